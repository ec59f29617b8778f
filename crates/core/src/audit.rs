//! The audit trail's pure half: what one change to an audited object looks like, and the
//! field-level diff of an object's serialized form before and after it. Secrets are
//! masked here, before anything is stored, so no later reader (API, UI, the database
//! itself) can show one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One recorded change, as `GET /api/v1/audit` answers it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    /// Increasing; `before=<id>` pages back from it.
    pub id: i64,
    pub at: DateTime<Utc>,
    /// "admin" for the admin token, a team token's name, or a signed-in user's email.
    pub actor: String,
    /// integration, source, rule, token or user.
    pub object_type: String,
    pub object_id: String,
    /// create, update, delete, rotate, reorder, revoke, reset_password, update_access…
    pub action: String,
    /// `{"field.path": {"from": …, "to": …}}`; a secret field's entry is only the string
    /// "set", "changed" or "removed".
    #[schema(value_type = Object)]
    pub changes: Value,
}

/// An event not yet stored (the store gives it its id).
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub object_type: &'static str,
    pub object_id: String,
    pub action: &'static str,
    pub changes: Value,
}

/// Whether a field holds a secret, judged by its name so that a field added later with a
/// secret-sounding name is masked without anyone remembering to list it.
pub fn is_secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("password")
        || name.contains("secret")
        || name.contains("api_key")
        || name.contains("token")
        || name.ends_with("_hash")
        || name.ends_with("_sealed")
}

/// How a secret changed, the only thing ever recorded about one.
pub fn secret_change(before: bool, after: bool) -> Option<Value> {
    match (before, after) {
        (false, true) => Some(Value::from("set")),
        (true, false) => Some(Value::from("removed")),
        (true, true) => Some(Value::from("changed")),
        (false, false) => None,
    }
}

/// The fields that differ between two serialized forms of an object (`Value::Null` for
/// "did not exist": a create or a delete), nested objects flattened to dotted paths.
pub fn diff(before: &Value, after: &Value) -> Value {
    let mut changes = Map::new();
    diff_into(&mut changes, "", before, after);
    Value::Object(changes)
}

/// Adds a secret's change to a diff, for secrets not part of the serialized form (a
/// credential kept apart from its integration). `changed` says whether a new value was
/// written; one written over an old one counts as changed even if equal, since nobody
/// can tell.
pub fn record_secret(changes: &mut Value, field: &str, had: bool, has: bool) {
    if let (Value::Object(map), Some(entry)) = (changes, secret_change(had, has)) {
        map.insert(field.to_owned(), entry);
    }
}

/// Fields every save moves: the event's own time says when.
const UNAUDITED: [&str; 1] = ["updated_at"];

fn diff_into(changes: &mut Map<String, Value>, path: &str, before: &Value, after: &Value) {
    if before == after || UNAUDITED.contains(&path) {
        return;
    }
    let field = path.rsplit('.').next().unwrap_or(path);
    if !path.is_empty() && is_secret_field(field) {
        if let Some(entry) = secret_change(present(before), present(after)) {
            changes.insert(path.to_owned(), entry);
        }
        return;
    }
    match (before, after) {
        (Value::Object(_) | Value::Null, Value::Object(_) | Value::Null)
            if before.is_object() || after.is_object() =>
        {
            let empty = Map::new();
            let b = before.as_object().unwrap_or(&empty);
            let a = after.as_object().unwrap_or(&empty);
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let sub = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff_into(
                    changes,
                    &sub,
                    b.get(key).unwrap_or(&Value::Null),
                    a.get(key).unwrap_or(&Value::Null),
                );
            }
        }
        _ => {
            let mut entry = Map::new();
            entry.insert("from".into(), mask(before));
            entry.insert("to".into(), mask(after));
            changes.insert(
                if path.is_empty() { "value" } else { path }.to_owned(),
                Value::Object(entry),
            );
        }
    }
}

/// Whether a secret field says there is a secret (`hmac_secret_set: false` says not).
fn present(value: &Value) -> bool {
    !matches!(value, Value::Null | Value::Bool(false)) && value != &Value::String(String::new())
}

/// A value shown whole (a list, say) may still hold objects with secret fields.
fn mask(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_field(k) {
                        secret_change(false, present(v)).unwrap_or(Value::Null)
                    } else {
                        mask(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_changed_fields_appear_with_from_and_to() {
        let before = json!({"name": "a", "enabled": true, "settings": {"x": 1, "y": 2},
                            "updated_at": "2026-12-03T10:00:00Z"});
        let after = json!({"name": "b", "enabled": true, "settings": {"x": 1, "y": 3},
                           "updated_at": "2026-12-03T10:05:00Z"});
        assert_eq!(
            diff(&before, &after),
            json!({
                "name": {"from": "a", "to": "b"},
                "settings.y": {"from": 2, "to": 3},
            })
        );
    }

    #[test]
    fn a_create_lists_every_field_from_null() {
        assert_eq!(
            diff(&Value::Null, &json!({"name": "a", "tags": ["x"]})),
            json!({"name": {"from": null, "to": "a"}, "tags": {"from": null, "to": ["x"]}})
        );
        assert_eq!(
            diff(&json!({"name": "a"}), &Value::Null),
            json!({"name": {"from": "a", "to": null}})
        );
    }

    #[test]
    fn secrets_are_only_said_to_have_changed() {
        let before = json!({"password": "hunter2", "auth": {"client_secret": "s1"}});
        let after = json!({"password": "correct horse", "auth": {"client_secret": "s1"},
                           "api_key": "k"});
        let changes = diff(&before, &after);
        assert_eq!(changes, json!({"password": "changed", "api_key": "set"}));
        let text = changes.to_string();
        for secret in ["hunter2", "correct horse", "s1", "\"k\""] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
        assert_eq!(
            diff(&json!({"hmac_secret": "x"}), &json!({"hmac_secret": null})),
            json!({"hmac_secret": "removed"})
        );
    }

    #[test]
    fn secrets_inside_whole_values_are_masked_too() {
        let changes = diff(
            &json!({"items": []}),
            &json!({"items": [{"name": "n", "token_hash": "abc"}]}),
        );
        assert_eq!(
            changes,
            json!({"items": {"from": [], "to": [{"name": "n", "token_hash": "set"}]}})
        );
    }

    #[test]
    fn a_secret_kept_apart_is_recorded_by_name() {
        let mut changes = diff(&json!({"a": 1}), &json!({"a": 1}));
        record_secret(&mut changes, "password", true, true);
        record_secret(&mut changes, "api_key", false, false);
        assert_eq!(changes, json!({"password": "changed"}));
    }

    #[test]
    fn secret_names_are_recognised() {
        for name in [
            "password",
            "client_secret",
            "api_key",
            "hmac_secret",
            "token_hash",
            "secret",
            "secrets",
            "password_hash",
            "secret_sealed",
        ] {
            assert!(is_secret_field(name), "{name}");
        }
        for name in ["name", "team_id", "enabled", "email", "is_admin"] {
            assert!(!is_secret_field(name), "{name}");
        }
    }
}
