//! RFC 7386 JSON merge patch, the body of every PATCH: objects merge key by key, `null`
//! removes, anything else replaces.

use serde_json::Value;

pub fn merge_patch_value(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(patch) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let Value::Object(target) = target else {
                return;
            };
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge_patch_value(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_merge_and_null_removes() {
        let mut target = json!({"a": 1, "b": {"c": 2, "d": 3}});
        merge_patch_value(&mut target, json!({"a": null, "b": {"c": 5}, "e": [1]}));
        assert_eq!(target, json!({"b": {"c": 5, "d": 3}, "e": [1]}));
    }
}
