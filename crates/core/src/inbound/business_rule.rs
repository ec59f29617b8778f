//! The business rule an admin pastes into ServiceNow so it pokes Snowbound after a
//! change: `{sys_id, table}` only (Snowbound reads the record itself), posted with
//! `sn_ws.RESTMessageV2` and `executeAsync()` so the agent's save never waits for us.

use serde::Serialize;

use crate::model::ServiceNowSettings;
use crate::sync::STATE_FIELD;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BusinessRule {
    pub name: String,
    pub table: String,
    /// Always `after`: the poke must see the committed record.
    pub when: &'static str,
    pub insert: bool,
    pub update: bool,
    /// The rule's "Condition" (a server-side script expression).
    pub condition: String,
    pub script: String,
}

/// A JavaScript string literal: JSON's, with the two line separators JSON allows raw
/// but older JavaScript engines do not.
fn js_string(text: &str) -> String {
    serde_json::to_string(text)
        .unwrap_or_default()
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The rule for `ingest_url` (which carries the source's secret: shown to admins only).
/// It fires on inserts, on changes of the fields inbound reads, and — with an
/// `open_filter` — on any change of a record the filter matches, so a record that comes
/// into the filter is heard at once; polling covers whatever a poke loses.
pub fn business_rule(
    source_name: &str,
    settings: &ServiceNowSettings,
    open_filter: Option<&str>,
    ingest_url: &str,
) -> BusinessRule {
    let mut watched = vec![STATE_FIELD, settings.severity.primary_field.as_str()];
    watched.dedup();
    let mut condition = vec!["current.operation() == 'insert'".to_owned()];
    condition.extend(watched.iter().map(|f| format!("current.{f}.changes()")));
    if let Some(filter) = open_filter.map(str::trim).filter(|f| !f.is_empty()) {
        condition.push(format!(
            "GlideFilter.checkRecord(current, {})",
            js_string(filter)
        ));
    }
    let script = format!(
        "(function executeRule(current, previous /*null when async*/) {{\n\
         \x20   // Snowbound reads the record itself; the poke only says which one changed.\n\
         \x20   var r = new sn_ws.RESTMessageV2();\n\
         \x20   r.setEndpoint({url});\n\
         \x20   r.setHttpMethod('post');\n\
         \x20   r.setRequestHeader('Content-Type', 'application/json');\n\
         \x20   r.setRequestBody(JSON.stringify({{sys_id: current.getUniqueValue(), table: current.getTableName()}}));\n\
         \x20   r.executeAsync();\n\
         }})(current, previous);\n",
        url = js_string(ingest_url)
    );
    BusinessRule {
        name: format!("Snowbound: notify {source_name}"),
        table: settings.table.clone(),
        when: "after",
        insert: true,
        update: true,
        condition: condition.join(" || "),
        script,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_posts_sys_id_and_table_asynchronously_after_insert_and_update() {
        let settings =
            ServiceNowSettings::with_defaults("https://x".into(), "sb".into(), "Solved".into());
        let rule = business_rule(
            "desk",
            &settings,
            Some("assignment_group.name=Network^short_descriptionLIKE\"quoted\""),
            "https://sb.example/ingest/s3cr3t",
        );
        assert_eq!(rule.table, "incident");
        assert_eq!(rule.when, "after");
        assert!(rule.insert && rule.update);
        assert_eq!(
            rule.condition,
            "current.operation() == 'insert' || current.state.changes() || \
             current.urgency.changes() || GlideFilter.checkRecord(current, \
             \"assignment_group.name=Network^short_descriptionLIKE\\\"quoted\\\"\")"
        );
        assert!(rule.script.contains("new sn_ws.RESTMessageV2()"));
        assert!(rule
            .script
            .contains("r.setEndpoint(\"https://sb.example/ingest/s3cr3t\");"));
        assert!(rule.script.contains(
            "JSON.stringify({sys_id: current.getUniqueValue(), table: current.getTableName()})"
        ));
        assert!(rule.script.trim_end().ends_with("})(current, previous);"));
        assert!(rule.script.contains("r.executeAsync();"));
        assert!(!rule.script.contains("execute();"));
    }

    #[test]
    fn without_a_filter_it_watches_inserts_and_the_read_fields() {
        let mut settings =
            ServiceNowSettings::with_defaults("https://x".into(), "sb".into(), "Solved".into());
        settings.table = "u_ticket".into();
        settings.severity.primary_field = "priority".into();
        let rule = business_rule("desk", &settings, Some("  "), "https://sb/ingest/x");
        assert_eq!(rule.table, "u_ticket");
        assert_eq!(
            rule.condition,
            "current.operation() == 'insert' || current.state.changes() || current.priority.changes()"
        );
        assert_eq!(js_string("a\u{2028}b'\""), "\"a\\u2028b'\\\"\"");
    }
}
