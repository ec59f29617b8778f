use serde::Serialize;
use serde_json::Value;

use crate::FieldMap;

/// A record as ServiceNow returned it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Record {
    pub sys_id: String,
    /// Empty when the table has no `number` field (custom tables may not).
    pub number: String,
    /// Every returned field as a string, as ServiceNow stores it.
    pub values: FieldMap,
}

impl Record {
    /// `None` when the object has no usable `sys_id`: without it the record cannot be
    /// updated later, so such an answer is not a success.
    pub(crate) fn from_json(result: &Value) -> Option<Record> {
        let fields = result.as_object()?;
        let values: FieldMap = fields
            .iter()
            .map(|(name, value)| (name.clone(), field_text(value)))
            .collect();
        let sys_id = values.get("sys_id").filter(|id| !id.is_empty())?.clone();
        let number = values.get("number").cloned().unwrap_or_default();
        Some(Record {
            sys_id,
            number,
            values,
        })
    }
}

/// Values should be strings with `sysparm_exclude_reference_link=true`, but instances and
/// display-value settings differ, so read the others leniently rather than fail a write
/// that already happened.
pub(crate) fn field_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Object(map) => match map.get("value") {
            Some(inner) => field_text(inner),
            None => value.to_string(),
        },
        Value::Array(_) => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_strings_and_lenient_values() {
        let record = Record::from_json(&json!({
            "sys_id": "abc",
            "number": "INC0010001",
            "state": "1",
            "reopen_count": 0,
            "active": true,
            "caller_id": {"link": "https://x/api/now/table/sys_user/u1", "value": "u1"},
            "assignment_group": "",
            "closed_at": null,
            "both": {"display_value": "New", "value": "1"},
        }))
        .unwrap();
        assert_eq!(record.sys_id, "abc");
        assert_eq!(record.number, "INC0010001");
        let v = |k: &str| record.values[k].as_str();
        assert_eq!(v("state"), "1");
        assert_eq!(v("reopen_count"), "0");
        assert_eq!(v("active"), "true");
        assert_eq!(v("caller_id"), "u1");
        assert_eq!(v("closed_at"), "");
        assert_eq!(v("both"), "1");
    }

    #[test]
    fn a_record_needs_a_sys_id() {
        assert_eq!(Record::from_json(&json!({"number": "INC1"})), None);
        assert_eq!(Record::from_json(&json!({"sys_id": ""})), None);
        assert_eq!(Record::from_json(&json!([])), None);
        let no_number = Record::from_json(&json!({"sys_id": "s"})).unwrap();
        assert_eq!(no_number.number, "");
    }
}
