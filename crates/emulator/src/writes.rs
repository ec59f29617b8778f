//! Turning a POST/PUT/PATCH body into a stored record (docs/servicenow/TABLE_API.md §2.5): coercion to
//! strings, ignored and read-only fields, truncation, journal inputs, sys fields.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::business_rules;
use crate::errors::SnError;
use crate::incident;
use crate::schema::{Kind, TableDef, Ty};
use crate::server::Shared;
use crate::store::{new_sys_id, now_string, Data, JournalEntry, Record};

pub(crate) struct WriteCtx<'a> {
    pub user_name: &'a str,
    pub user_sys_id: String,
    pub now: String,
    pub input_display_value: bool,
    pub suppress_auto_sys: bool,
    pub data_policy: bool,
    pub inactive_close_code_is_empty: bool,
}

impl<'a> WriteCtx<'a> {
    pub fn new(data: &Data, user_name: &'a str) -> Self {
        WriteCtx {
            user_name,
            user_sys_id: data.user_sys_id(user_name).unwrap_or_default().to_string(),
            now: now_string(),
            input_display_value: false,
            suppress_auto_sys: false,
            data_policy: true,
            inactive_close_code_is_empty: true,
        }
    }
}

/// JSON values become the strings an instance would store.
fn value_to_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // A reference written back as `{"value": sys_id, "link": …}` (as read) keeps its value.
        Value::Object(o) => o.get("value").map(value_to_string).unwrap_or_default(),
        Value::Array(a) => a.iter().map(value_to_string).collect::<Vec<_>>().join(","),
    }
}

fn truncate(s: String, max: Option<usize>) -> String {
    match max {
        Some(n) if s.chars().count() > n => s.chars().take(n).collect(),
        _ => s,
    }
}

/// Fields an API caller cannot set: sys fields and those computed by business rules.
fn read_only(kind: Kind, field: &str) -> bool {
    field.starts_with("sys_")
        || (kind == Kind::Incident
            && matches!(
                field,
                "priority" | "active" | "task_effective_number" | "reopen_count"
            ))
}

fn blank_record(def: &TableDef) -> Record {
    def.fields()
        .map(|f| (f.name.to_string(), String::new()))
        .collect()
}

/// Computes the record that a write would store, without storing it.
/// Returns the record and the journal inputs (element, text) to add.
pub(crate) fn prepare(
    data: &mut Data,
    def: &TableDef,
    old: Option<&Record>,
    input: &Map<String, Value>,
    ctx: &WriteCtx,
) -> Result<(Record, Vec<(String, String)>), SnError> {
    let choices = data.choice_index();
    let tables = def.choice_tables();
    let mut rec = match old {
        Some(r) => r.clone(),
        None => {
            let mut r = blank_record(def);
            if def.kind == Kind::Incident {
                incident::defaults(&mut r, def);
            }
            if def.kind == Kind::Choice {
                r.insert("language".into(), "en".into());
                r.insert("inactive".into(), "false".into());
                r.insert("sequence".into(), "0".into());
            }
            r
        }
    };
    let mut journal = Vec::new();
    let mut accepted: Vec<&str> = Vec::new();
    for (key, raw) in input {
        let Some(field) = def.field(key) else {
            continue;
        };
        if read_only(def.kind, field.name) {
            continue;
        }
        let mut value = value_to_string(raw);
        match field.ty {
            Ty::Journal => {
                if !value.trim().is_empty() {
                    journal.push((field.name.to_string(), value));
                }
                continue;
            }
            Ty::IntChoice | Ty::TextChoice if ctx.input_display_value => {
                if let Some(v) = choices.value_for_label(&tables, field.name, &value) {
                    value = v.to_string();
                }
            }
            // A display value names the referenced record; one that names none leaves
            // the field as it was (a sys_id given as is still works).
            Ty::Reference(table) if ctx.input_display_value && !value.is_empty() => {
                match data.sys_id_for_display(table, &value) {
                    Some(id) => value = id,
                    None if data.has_sys_id(table, &value) => {}
                    None => continue,
                }
            }
            _ => {}
        }
        match field.ty {
            // Choice fields cannot be cleared with "" (§2.5); integers must be integers.
            Ty::IntChoice if value.is_empty() => continue,
            Ty::Integer | Ty::IntChoice => match value.trim().parse::<i64>() {
                Ok(n) => value = n.to_string(),
                Err(_) => continue,
            },
            Ty::Boolean => {
                value = match value.to_ascii_lowercase().as_str() {
                    "true" | "1" => "true".into(),
                    "false" | "0" | "" => "false".into(),
                    _ => continue,
                }
            }
            _ => {}
        }
        rec.insert(field.name.to_string(), truncate(value, field.max));
        accepted.push(field.name);
    }
    if def.kind == Kind::Incident {
        if old.is_none() && rec.get("number").is_none_or(|n| n.is_empty()) {
            let number = data.next_number(&def.prefix);
            rec.insert("number".into(), number);
        }
        incident::apply_rules(old, &mut rec, &accepted, ctx);
        incident::data_policy(&rec, ctx, &choices, &tables)?;
    }
    match old {
        None => {
            rec.insert("sys_id".into(), new_sys_id());
            rec.insert("sys_created_on".into(), ctx.now.clone());
            rec.insert("sys_created_by".into(), ctx.user_name.to_string());
            rec.insert("sys_updated_on".into(), ctx.now.clone());
            rec.insert("sys_updated_by".into(), ctx.user_name.to_string());
            rec.insert("sys_mod_count".into(), "0".into());
        }
        Some(old) => {
            // An update that changes nothing is not written by the platform, so the sys
            // fields stay; a journal entry alone does count as a change.
            let changed = &rec != old || !journal.is_empty();
            if changed && !ctx.suppress_auto_sys {
                let count: u64 = old
                    .get("sys_mod_count")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                rec.insert("sys_updated_on".into(), ctx.now.clone());
                rec.insert("sys_updated_by".into(), ctx.user_name.to_string());
                rec.insert("sys_mod_count".into(), (count + 1).to_string());
            }
        }
    }
    Ok((rec, journal))
}

/// Stores a prepared record and its journal entries.
pub(crate) fn commit(
    data: &mut Data,
    def: &TableDef,
    rec: Record,
    journal: Vec<(String, String)>,
    is_insert: bool,
    ctx: &WriteCtx,
) {
    let sys_id = rec["sys_id"].clone();
    if is_insert {
        data.insert(def.kind, rec);
    } else {
        data.replace(def.kind, rec);
    }
    for (element, value) in journal {
        // The Table API sees each journal write as a sys_journal_field row too.
        let mut row = Record::new();
        row.insert("sys_id".into(), new_sys_id());
        row.insert("name".into(), def.name.clone());
        row.insert("element".into(), element.clone());
        row.insert("element_id".into(), sys_id.clone());
        row.insert("value".into(), value.clone());
        row.insert("sys_created_on".into(), ctx.now.clone());
        row.insert("sys_created_by".into(), ctx.user_name.to_string());
        row.insert("sys_updated_on".into(), ctx.now.clone());
        row.insert("sys_updated_by".into(), ctx.user_name.to_string());
        row.insert("sys_mod_count".into(), "0".into());
        data.insert(Kind::JournalField, row);
        data.add_journal(JournalEntry {
            sys_id: new_sys_id(),
            name: def.name.clone(),
            element_id: sys_id.clone(),
            element,
            value,
            sys_created_on: ctx.now.clone(),
            sys_created_by: ctx.user_name.to_string(),
        });
    }
}

/// Prepares and stores one write under the data lock, then starts the business rules
/// (after the lock is released, so their posts never wait on or hold up the data).
/// `sys_id` is the record to update; `None` inserts. Returns the record's sys_id.
pub(crate) fn store(
    shared: &Arc<Shared>,
    def: &TableDef,
    sys_id: Option<&str>,
    input: &Map<String, Value>,
    ctx: &WriteCtx,
) -> Result<String, SnError> {
    let (id, class, changed) = {
        let mut data = shared.data();
        // Read under the lock so concurrent PATCHes do not lose each other's fields.
        let current = match sys_id {
            Some(id) => Some(data.get(def, id).cloned().ok_or_else(SnError::no_record)?),
            None => None,
        };
        let (rec, journal) = prepare(&mut data, def, current.as_ref(), input, ctx)?;
        // An update that changes nothing is not an update: no after-update rule runs.
        let changed = current.as_ref() != Some(&rec) || !journal.is_empty();
        let id = rec["sys_id"].clone();
        let class = rec
            .get("sys_class_name")
            .filter(|c| !c.is_empty())
            .cloned()
            .unwrap_or_else(|| def.name.clone());
        if changed {
            commit(&mut data, def, rec, journal, current.is_none(), ctx);
        }
        (id, class, changed)
    };
    if changed {
        let operation = if sys_id.is_none() { "insert" } else { "update" };
        business_rules::fire(shared, def, &class, &id, operation);
    }
    Ok(id)
}
