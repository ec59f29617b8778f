//! Incident business rules and data policy (docs/servicenow/TABLE_API.md §3.1–§3.5).

use crate::choices::ChoiceIndex;
use crate::errors::SnError;
use crate::schema::TableDef;
use crate::store::Record;
use crate::writes::WriteCtx;

pub(crate) const RESOLVED: &str = "6";
pub(crate) const CLOSED: &str = "7";
pub(crate) const CANCELED: &str = "8";

/// Values a freshly inserted incident has (§3.1 "Default values").
pub(crate) fn defaults(rec: &mut Record, def: &TableDef) {
    for (k, v) in [
        ("state", "1"),
        ("incident_state", "1"),
        ("active", "true"),
        ("impact", "3"),
        ("urgency", "3"),
        ("priority", "5"),
        ("severity", "3"),
        ("notify", "1"),
        ("escalation", "0"),
        ("approval", "not requested"),
        ("upon_approval", "proceed"),
        ("upon_reject", "cancel"),
        ("made_sla", "true"),
        ("knowledge", "false"),
        ("category", "inquiry"),
        ("reopen_count", "0"),
        ("reassignment_count", "0"),
        ("child_incidents", "0"),
        ("sys_domain", "global"),
        ("sys_domain_path", "/"),
    ] {
        rec.insert(k.to_string(), v.to_string());
    }
    rec.insert("sys_class_name".into(), def.name.clone());
}

/// The base-system priority data lookup (§3.3): rows impact, columns urgency.
pub(crate) fn priority(impact: &str, urgency: &str) -> Option<String> {
    let i: u8 = impact.parse().ok()?;
    let u: u8 = urgency.parse().ok()?;
    ((1..=3).contains(&i) && (1..=3).contains(&u)).then(|| (i + u - 1).to_string())
}

fn get<'a>(rec: &'a Record, field: &str) -> &'a str {
    rec.get(field).map(String::as_str).unwrap_or("")
}

fn set(rec: &mut Record, field: &str, value: &str) {
    rec.insert(field.to_string(), value.to_string());
}

/// Applies the business rules after the caller's fields were merged into `rec`.
/// `accepted` lists the fields the caller actually set.
pub(crate) fn apply_rules(
    old: Option<&Record>,
    rec: &mut Record,
    accepted: &[&str],
    ctx: &WriteCtx,
) {
    let given = |f: &str| accepted.contains(&f);
    // state and incident_state are one value seen through two fields; state wins.
    if given("state") {
        let s = get(rec, "state").to_string();
        set(rec, "incident_state", &s);
    } else if given("incident_state") {
        let s = get(rec, "incident_state").to_string();
        set(rec, "state", &s);
    }
    if let Some(p) = priority(get(rec, "impact"), get(rec, "urgency")) {
        set(rec, "priority", &p);
    }
    let number = get(rec, "number").to_string();
    set(rec, "task_effective_number", &number);

    let state = get(rec, "state").to_string();
    let old_state = old.map(|o| get(o, "state").to_string());
    let active = if state == CLOSED || state == CANCELED {
        "false"
    } else {
        "true"
    };
    set(rec, "active", active);

    let user = ctx.user_sys_id.clone();
    let now = ctx.now.clone();
    if old.is_none() {
        if !given("opened_at") || get(rec, "opened_at").is_empty() {
            set(rec, "opened_at", &now);
        }
        if !given("opened_by") || get(rec, "opened_by").is_empty() {
            set(rec, "opened_by", &user);
        }
    }
    let moved = old_state.as_deref() != Some(state.as_str());
    if moved && state == RESOLVED {
        if !given("resolved_at") || get(rec, "resolved_at").is_empty() {
            set(rec, "resolved_at", &now);
        }
        if !given("resolved_by") || get(rec, "resolved_by").is_empty() {
            set(rec, "resolved_by", &user);
        }
    }
    if moved && state == CLOSED {
        if !given("closed_at") || get(rec, "closed_at").is_empty() {
            set(rec, "closed_at", &now);
        }
        if !given("closed_by") || get(rec, "closed_by").is_empty() {
            set(rec, "closed_by", &user);
        }
    }
    // Reopen: Resolved back to an open state (§3.2 "Reopen").
    if old_state.as_deref() == Some(RESOLVED) && matches!(state.as_str(), "1" | "2" | "3") {
        let count: u64 = get(rec, "reopen_count").parse().unwrap_or(0);
        set(rec, "reopen_count", &(count + 1).to_string());
        set(rec, "reopened_time", &now);
        set(rec, "reopened_by", &user);
    }
    // The hold reason only means something while On Hold.
    if moved && state != "3" && old.is_some() && !given("hold_reason") {
        set(rec, "hold_reason", "");
    }
}

/// The close-fields data policy (§3.5): a record in Resolved or Closed must have a
/// resolution code (an active choice) and resolution notes.
pub(crate) fn data_policy(
    rec: &Record,
    ctx: &WriteCtx,
    choices: &ChoiceIndex,
    tables: &[&str],
) -> Result<(), SnError> {
    let state = get(rec, "state");
    if !ctx.data_policy || (state != RESOLVED && state != CLOSED) {
        return Ok(());
    }
    let mut missing = Vec::new();
    let code = get(rec, "close_code");
    let code_missing = code.trim().is_empty()
        || (ctx.inactive_close_code_is_empty
            && !choices.is_active_choice(tables, "close_code", code));
    if code_missing {
        missing.push("Resolution code");
    }
    if get(rec, "close_notes").trim().is_empty() {
        missing.push("Resolution notes");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SnError::data_policy(&missing))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_matrix_section_3_3() {
        assert_eq!(priority("1", "1").as_deref(), Some("1"));
        assert_eq!(priority("2", "2").as_deref(), Some("3"));
        assert_eq!(priority("3", "3").as_deref(), Some("5"));
        assert_eq!(priority("1", "3").as_deref(), Some("3"));
        assert_eq!(priority("4", "1"), None);
    }
}
