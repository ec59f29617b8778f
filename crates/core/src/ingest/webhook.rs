//! Snowbound's own webhook body:
//! `{dedup_key, status?: open|resolved, title, description?, severity, attributes?}`.
//! Strict (unknown keys are refused) because its senders are scripts people write, and a
//! typo'd key silently dropped is worse than a 422 naming it.

use std::collections::BTreeMap;

use crate::source::Source;
use crate::Attributes;
use serde::Deserialize;
use serde_json::Value;

use crate::validate::{check_field, limits, replace_nul};

use super::{checked_key, Alert, AlertEvent, AlertFields};
use crate::checks::check_attributes;
use crate::json::{parse_json, BodyError};

/// A `webhook` source's body (public for the OpenAPI document only).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookAlert)]
pub struct Body {
    /// Alerts with one key update one incident while it is unresolved.
    dedup_key: String,
    /// `open` (the default) or `resolved`.
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    attributes: Option<BTreeMap<String, Value>>,
}

pub fn parse(body: &[u8], source: &Source) -> Result<Alert, BodyError> {
    let body: Body = parse_json(body)?;
    let dedup_key = checked_key(&body.dedup_key, "dedup_key")?;
    let event = match body.status.as_deref().unwrap_or("open") {
        "open" => AlertEvent::Firing(fields(body, source)?),
        // A resolve needs nothing but the key; whatever else came along is ignored.
        "resolved" => AlertEvent::Resolved,
        other => {
            return Err(BodyError::field(
                "status",
                format!("unknown status `{other}`; expected one of: open, resolved"),
            ))
        }
    };
    Ok(Alert { dedup_key, event })
}

fn fields(body: Body, source: &Source) -> Result<AlertFields, BodyError> {
    let title = replace_nul(body.title.unwrap_or_default());
    let title = title.trim();
    if title.is_empty() {
        return Err(BodyError::field("title", "is required"));
    }
    check_field("title", title, limits::TITLE)?;
    let description = body.description.map(replace_nul);
    if let Some(description) = &description {
        check_field("description", description, limits::DESCRIPTION)?;
    }
    let word = body
        .severity
        .ok_or_else(|| BodyError::field("severity", "is required"))?;
    let severity = source.map_severity(&word).ok_or_else(|| {
        let mut known: Vec<&str> = vec!["critical", "warning", "minor"];
        known.extend(source.severity_map.keys().map(String::as_str));
        BodyError::field(
            "severity",
            format!(
                "unknown severity `{word}`; expected one of: {}",
                known.join(", ")
            ),
        )
    })?;
    let attributes = body.attributes.map(attributes).transpose()?;
    if let Some(attributes) = &attributes {
        check_attributes(attributes)?;
    }
    Ok(AlertFields {
        title: title.to_owned(),
        description,
        severity,
        attributes,
    })
}

/// Scalars become their text (`5`, `true`); nested values have no place in a flat map
/// that rules match on, so they are refused by name.
fn attributes(raw: BTreeMap<String, Value>) -> Result<Attributes, BodyError> {
    raw.into_iter()
        .map(|(key, value)| {
            let key = replace_nul(key);
            let text = match value {
                Value::String(s) => replace_nul(s),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null | Value::Array(_) | Value::Object(_) => {
                    return Err(BodyError::field(
                        format!("attributes.{key}"),
                        "must be a string, number or boolean",
                    ))
                }
            };
            Ok((key, text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceKind;
    use crate::Severity;
    use chrono::Utc;
    use uuid::Uuid;

    fn source() -> Source {
        Source {
            id: Uuid::now_v7(),
            team_id: Uuid::now_v7(),
            kind: SourceKind::Webhook,
            name: "hook".into(),
            severity_map: [("sev1".to_owned(), Severity::Critical)].into(),
            servicenow: None,
            email: None,
            grafana: None,
            json: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn field_of(body: &str) -> String {
        let err = parse(body.as_bytes(), &source()).unwrap_err();
        err.field.unwrap_or_else(|| format!("<{:?}>", err.kind))
    }

    #[test]
    fn an_open_alert_with_everything() {
        let alert = parse(
            br#"{"dedup_key":" k1 ","title":"Disk full","severity":"SEV1",
                 "description":"d","attributes":{"host":"db-1","cpu":95,"ok":false}}"#,
            &source(),
        )
        .unwrap();
        assert_eq!(alert.dedup_key, "k1");
        let AlertEvent::Firing(fields) = alert.event else {
            panic!("not firing")
        };
        assert_eq!(fields.severity, Severity::Critical);
        assert_eq!(fields.attributes.unwrap()["cpu"], "95");
    }

    #[test]
    fn a_resolve_needs_only_the_key() {
        let alert = parse(br#"{"dedup_key":"k","status":"resolved"}"#, &source()).unwrap();
        assert_eq!(alert.event, AlertEvent::Resolved);
    }

    #[test]
    fn problems_name_their_field() {
        assert_eq!(field_of(r#"{"title":"t","severity":"minor"}"#), "dedup_key");
        assert_eq!(field_of(r#"{"dedup_key":"","title":"t"}"#), "dedup_key");
        assert_eq!(field_of(r#"{"dedup_key":"k","severity":"minor"}"#), "title");
        assert_eq!(field_of(r#"{"dedup_key":"k","title":"t"}"#), "severity");
        assert_eq!(
            field_of(r#"{"dedup_key":"k","title":"t","severity":"p1"}"#),
            "severity"
        );
        assert_eq!(
            field_of(r#"{"dedup_key":"k","title":"t","severity":"minor","status":"firing"}"#),
            "status"
        );
        assert_eq!(
            field_of(r#"{"dedup_key":"k","title":"t","severity":"minor","attributes":{"a":[1]}}"#),
            "attributes.a"
        );
        assert_eq!(
            field_of(r#"{"dedup_key":"k","title":"t","severity":"minor","sevrity":"x"}"#),
            "sevrity"
        );
        assert_eq!(field_of(r#"{"dedup_key":7}"#), "dedup_key");
    }

    #[test]
    fn garbage_is_refused_without_panicking() {
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"{",
            b"\xff\xfe",
            b"{\"dedup_key\":\"\\ud800\"}",
        ] {
            assert!(parse(body, &source()).is_err(), "{body:?}");
        }
    }
}
