//! Any JSON webhook, read through a mapping the admin writes: JSONPath expressions
//! (RFC 9535, by `serde_json_path`) for the dedup key, title, description and
//! attributes, and for status and severity a path with a value map and a fallback.
//!
//! A mapping may be incomplete while the admin builds it on kept payloads:
//! [`preview`] says what a payload would become with what is there, what is missing
//! and which path failed; [`parse`] is ingest's strict reading (every problem a
//! [`BodyError`] naming the mapping field, its message the path).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json_path::JsonPath;

use super::{checked_key, Alert, AlertEvent, AlertFields};
use crate::json::{parse_json, BodyError};
use crate::model::Severity;
use crate::validate::{check_text, cut, limits, replace_nul, FieldError};

/// Longest JSONPath expression kept.
pub const PATH_MAX_CHARS: usize = 500;
/// Most attributes one mapping may extract.
pub const ATTRIBUTES_MAX: usize = 50;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonMapping {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ValueMap<MappedStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<ValueMap<Severity>>,
    /// Attribute name → path. A path that matches nothing leaves its attribute out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

/// A value read at `path`, translated by `map` (the sender's words; exact match first,
/// then ignoring case), else taken as is if it is one of ours, else `default`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, bound(deserialize = "T: Deserialize<'de>"))]
pub struct ValueMap<T> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub map: BTreeMap<String, T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<T>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MappedStatus {
    Open,
    Resolved,
}

impl MappedStatus {
    fn parse(word: &str) -> Option<Self> {
        match word.to_ascii_lowercase().as_str() {
            "open" => Some(MappedStatus::Open),
            "resolved" => Some(MappedStatus::Resolved),
            _ => None,
        }
    }
}

/// A mapping problem: the mapping field at fault (`json.status.path`), the path it
/// holds, and what went wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MappingError {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub message: String,
}

/// What a payload would become.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PreviewIncident {
    pub dedup_key: Option<String>,
    pub status: Option<MappedStatus>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub severity: Option<Severity>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// The payload would be accepted: it opens, updates or resolves an incident.
    pub accepted: bool,
    pub incident: PreviewIncident,
    /// Mapping fields not set yet that an incident needs (`json.title`).
    pub missing: Vec<String>,
    pub errors: Vec<MappingError>,
}

/// Every problem of a mapping as it would be saved: bad paths and what is missing.
pub fn validate(mapping: &JsonMapping) -> Vec<FieldError> {
    let mut errors: Vec<FieldError> = compile_errors(mapping)
        .into_iter()
        .map(|e| FieldError::new(e.field, e.message))
        .collect();
    errors.extend(
        missing(mapping)
            .into_iter()
            .map(|field| FieldError::new(field, "is required")),
    );
    errors
}

/// Paths that are not JSONPath, and map keys or attribute names we cannot store.
fn compile_errors(mapping: &JsonMapping) -> Vec<MappingError> {
    let mut errors = Vec::new();
    let mut check = |field: String, path: &str| {
        if let Err(message) = compile(path) {
            errors.push(MappingError {
                field,
                path: Some(path.to_owned()),
                message,
            });
        }
    };
    for (field, path) in [
        ("json.dedup_key", &mapping.dedup_key),
        ("json.title", &mapping.title),
        ("json.description", &mapping.description),
    ] {
        if let Some(path) = path {
            check(field.to_owned(), path);
        }
    }
    if let Some(path) = mapping.status.as_ref().and_then(|s| s.path.as_ref()) {
        check("json.status.path".to_owned(), path);
    }
    if let Some(path) = mapping.severity.as_ref().and_then(|s| s.path.as_ref()) {
        check("json.severity.path".to_owned(), path);
    }
    for (name, path) in &mapping.attributes {
        check(format!("json.attributes.{name}"), path);
    }
    let mut plain = |field: &str, message: String| {
        errors.push(MappingError {
            field: field.to_owned(),
            path: None,
            message,
        })
    };
    if mapping.attributes.len() > ATTRIBUTES_MAX {
        plain(
            "json.attributes",
            format!("at most {ATTRIBUTES_MAX} attributes"),
        );
    }
    for name in mapping.attributes.keys() {
        if name.trim().is_empty() {
            plain("json.attributes", "names must not be empty".into());
        } else if let Err(m) = check_text(name, limits::ATTRIBUTE_NAME) {
            plain("json.attributes", format!("an attribute name {m}"));
        }
    }
    let keys = mapping
        .status
        .iter()
        .flat_map(|s| s.map.keys().map(|k| ("json.status.map", k)))
        .chain(
            mapping
                .severity
                .iter()
                .flat_map(|s| s.map.keys().map(|k| ("json.severity.map", k))),
        );
    for (field, key) in keys {
        if let Err(m) = check_text(key, limits::SEVERITY_WORD) {
            plain(field, format!("a key {m}"));
        }
    }
    errors
}

fn compile(path: &str) -> Result<JsonPath, String> {
    check_text(path, PATH_MAX_CHARS)?;
    JsonPath::parse(path).map_err(|e| format!("not a valid JSONPath: {e}"))
}

/// Mapping fields an incident needs that are not set.
pub fn missing(mapping: &JsonMapping) -> Vec<String> {
    let mut missing = Vec::new();
    if mapping.dedup_key.is_none() {
        missing.push("json.dedup_key".to_owned());
    }
    if mapping.title.is_none() {
        missing.push("json.title".to_owned());
    }
    for (field, set) in [
        (
            "json.status",
            mapping
                .status
                .as_ref()
                .map(|s| s.path.is_some() || s.default.is_some()),
        ),
        (
            "json.severity",
            mapping
                .severity
                .as_ref()
                .map(|s| s.path.is_some() || s.default.is_some()),
        ),
    ] {
        match set {
            None => missing.push(field.to_owned()),
            Some(false) => missing.push(format!("{field}.path")),
            Some(true) => {}
        }
    }
    missing
}

/// What `body` would become under `mapping`, complete or not. Never fails: a body that
/// is not JSON is an error of the preview.
pub fn preview(mapping: &JsonMapping, body: &[u8]) -> Preview {
    match parse_json::<Value>(body) {
        Ok(value) => evaluate(mapping, &value).0,
        Err(e) => Preview {
            accepted: false,
            incident: PreviewIncident::default(),
            missing: missing(mapping),
            errors: vec![MappingError {
                field: "payload".into(),
                path: None,
                message: e.message,
            }],
        },
    }
}

/// Ingest's reading: the alert, or the first problem naming the mapping field.
pub fn parse(mapping: &JsonMapping, body: &[u8]) -> Result<Alert, BodyError> {
    let value: Value = parse_json(body)?;
    let (preview, alert) = evaluate(mapping, &value);
    if let Some(alert) = alert {
        return Ok(alert);
    }
    if let Some(first) = preview.errors.first() {
        let message = match &first.path {
            Some(path) => format!("`{path}`: {}", first.message),
            None => first.message.clone(),
        };
        return Err(BodyError::field(&first.field, message));
    }
    let field = preview.missing.first().cloned().unwrap_or("json".into());
    Err(BodyError::field(
        field,
        "the source's mapping does not say this yet; the payload was kept to build it on",
    ))
}

/// One value read by a path: `Ok(None)` when the path matches nothing (or null).
fn read<'v>(path: &str, value: &'v Value) -> Result<Option<&'v Value>, String> {
    let path = compile(path)?;
    let nodes = path.query(value);
    match nodes.at_most_one() {
        Ok(found) => Ok(found.filter(|v| !v.is_null())),
        Err(_) => Err(format!(
            "matched {} values in this payload; expected one",
            nodes.len()
        )),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => replace_nul(s.clone()),
        other => replace_nul(other.to_string()),
    }
}

struct Reader {
    errors: Vec<MappingError>,
}

impl Reader {
    fn fail(&mut self, field: &str, path: Option<&str>, message: impl Into<String>) {
        self.errors.push(MappingError {
            field: field.to_owned(),
            path: path.map(str::to_owned),
            message: message.into(),
        });
    }

    /// The text at `path` (`field` names it in errors); `required` makes "matched
    /// nothing" an error.
    fn text(
        &mut self,
        field: &str,
        path: Option<&str>,
        value: &Value,
        required: bool,
    ) -> Option<String> {
        let path = path?;
        match read(path, value) {
            Ok(Some(found)) => Some(text(found)),
            Ok(None) if required => {
                self.fail(field, Some(path), "matched nothing in this payload");
                None
            }
            Ok(None) => None,
            Err(message) => {
                self.fail(field, Some(path), message);
                None
            }
        }
    }

    fn mapped<T: Copy>(
        &mut self,
        field: &str,
        spec: Option<&ValueMap<T>>,
        value: &Value,
        ours: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let spec = spec?;
        let word = match spec.path.as_deref() {
            Some(path) => match read(path, value) {
                Ok(found) => found.map(text),
                Err(message) => {
                    self.fail(&format!("{field}.path"), Some(path), message);
                    return None;
                }
            },
            None => None,
        };
        let Some(word) = word else {
            if spec.default.is_none() {
                if let Some(path) = &spec.path {
                    self.fail(
                        &format!("{field}.path"),
                        Some(path),
                        format!("matched nothing in this payload, and {field}.default is not set"),
                    );
                }
            }
            return spec.default;
        };
        let lower = word.to_lowercase();
        let found = spec.map.get(&word).copied().or_else(|| {
            spec.map
                .iter()
                .find(|(k, _)| k.to_lowercase() == lower)
                .map(|(_, v)| *v)
        });
        match found.or_else(|| ours(&word)).or(spec.default) {
            Some(mapped) => Some(mapped),
            None => {
                self.fail(
                    &format!("{field}.map"),
                    spec.path.as_deref(),
                    format!(
                        "the value `{word}` is not in {field}.map, and {field}.default is not set"
                    ),
                );
                None
            }
        }
    }
}

fn evaluate(mapping: &JsonMapping, value: &Value) -> (Preview, Option<Alert>) {
    let mut reader = Reader {
        errors: compile_errors(mapping)
            .into_iter()
            // Path errors are found again, in context, while reading.
            .filter(|e| e.path.is_none())
            .collect(),
    };
    let dedup_key = reader
        .text("json.dedup_key", mapping.dedup_key.as_deref(), value, true)
        .and_then(|key| match checked_key(&key, "json.dedup_key") {
            Ok(key) => Some(key),
            Err(e) => {
                reader.fail("json.dedup_key", mapping.dedup_key.as_deref(), e.message);
                None
            }
        });
    let status = reader.mapped("json.status", mapping.status.as_ref(), value, |w| {
        MappedStatus::parse(w)
    });
    let severity = reader.mapped("json.severity", mapping.severity.as_ref(), value, |w| {
        w.trim().to_ascii_lowercase().parse().ok()
    });
    let title = reader
        .text("json.title", mapping.title.as_deref(), value, true)
        .map(|t| cut(t.trim().to_owned(), limits::TITLE));
    if let (Some(""), Some(path)) = (title.as_deref(), &mapping.title) {
        reader.fail("json.title", Some(path), "is empty in this payload");
    }
    let description = reader
        .text(
            "json.description",
            mapping.description.as_deref(),
            value,
            false,
        )
        .map(|d| cut(d, limits::DESCRIPTION));
    let mut attributes = BTreeMap::new();
    for (name, path) in &mapping.attributes {
        let field = format!("json.attributes.{name}");
        match compile(path).map(|p| p.query(value).all()) {
            Ok(found) => {
                let text = match found.as_slice() {
                    [] => continue,
                    [one] if one.is_null() => continue,
                    [one] => text(one),
                    many => text(&Value::Array(many.iter().map(|v| (*v).clone()).collect())),
                };
                attributes.insert(
                    cut(replace_nul(name.clone()), limits::ATTRIBUTE_NAME),
                    cut(text, limits::ATTRIBUTE_VALUE),
                );
            }
            Err(message) => reader.fail(&field, Some(path), message),
        }
    }
    let missing = missing(mapping);
    let errors = reader.errors;
    let incident = PreviewIncident {
        dedup_key,
        status,
        title,
        description,
        severity,
        attributes,
    };
    let alert = alert_of(&incident, &missing, &errors);
    let preview = Preview {
        accepted: alert.is_some(),
        incident,
        missing,
        errors,
    };
    (preview, alert)
}

/// A resolve needs only its key and status: what else the mapping failed to read does
/// not stop it.
fn alert_of(
    incident: &PreviewIncident,
    missing: &[String],
    errors: &[MappingError],
) -> Option<Alert> {
    let dedup_key = incident.dedup_key.clone()?;
    let blocks = |field: &str| {
        missing.iter().any(|m| m.starts_with(field))
            || errors.iter().any(|e| e.field.starts_with(field))
    };
    if blocks("json.dedup_key") || blocks("json.status") {
        return None;
    }
    match incident.status? {
        MappedStatus::Resolved => Some(Alert {
            dedup_key,
            event: AlertEvent::Resolved,
        }),
        MappedStatus::Open => {
            if !missing.is_empty() || !errors.is_empty() {
                return None;
            }
            Some(Alert {
                dedup_key,
                event: AlertEvent::Firing(AlertFields {
                    title: incident.title.clone()?,
                    description: incident.description.clone(),
                    severity: incident.severity?,
                    attributes: Some(incident.attributes.clone()),
                }),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(value: Value) -> JsonMapping {
        serde_json::from_value(value).unwrap()
    }

    /// Datadog's webhook, with the payload template most people keep.
    fn datadog() -> JsonMapping {
        mapping(json!({
            "dedup_key": "$.aggregate",
            "title": "$.title",
            "description": "$.body",
            "status": {"path": "$.transition", "map": {"Triggered": "open", "Recovered": "resolved"}, "default": "open"},
            "severity": {"path": "$.priority", "map": {"P1": "critical", "P2": "warning"}, "default": "minor"},
            "attributes": {"host": "$.hostname", "tags": "$.tags"}
        }))
    }

    const DATADOG: &str = r#"{"id":"7","aggregate":"agg-1","title":"[P1] CPU high on web-1",
        "body":"CPU > 90%","transition":"Triggered","priority":"P1","hostname":"web-1",
        "tags":"env:prod,role:web"}"#;

    #[test]
    fn a_complete_mapping_reads_a_payload() {
        let alert = parse(&datadog(), DATADOG.as_bytes()).unwrap();
        assert_eq!(alert.dedup_key, "agg-1");
        let AlertEvent::Firing(fields) = alert.event else {
            panic!("firing")
        };
        assert_eq!(fields.title, "[P1] CPU high on web-1");
        assert_eq!(fields.description.as_deref(), Some("CPU > 90%"));
        assert_eq!(fields.severity, Severity::Critical);
        let attributes = fields.attributes.unwrap();
        assert_eq!(attributes["host"], "web-1");
        assert_eq!(attributes["tags"], "env:prod,role:web");
    }

    #[test]
    fn value_maps_ignore_case_take_our_words_and_fall_back() {
        let m = datadog();
        let body = |transition: &str, priority: &str| {
            format!(
                r#"{{"aggregate":"a","title":"t","transition":"{transition}","priority":"{priority}"}}"#
            )
        };
        let resolved = parse(&m, body("recovered", "P1").as_bytes()).unwrap();
        assert_eq!(resolved.event, AlertEvent::Resolved);
        let p = preview(&m, body("Re-Triggered", "critical").as_bytes());
        assert_eq!(p.incident.status, Some(MappedStatus::Open));
        assert_eq!(p.incident.severity, Some(Severity::Critical));
        let p = preview(&m, body("Triggered", "P5").as_bytes());
        assert_eq!(p.incident.severity, Some(Severity::Minor));
        let mut strict = m.clone();
        strict.severity.as_mut().unwrap().default = None;
        let err = parse(&strict, body("Triggered", "P5").as_bytes()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("json.severity.map"));
        assert!(err.message.contains("`P5`"), "{}", err.message);
    }

    #[test]
    fn a_payload_the_mapping_cannot_read_names_the_path() {
        let err = parse(&datadog(), br#"{"aggregate":"a","transition":"Triggered"}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("json.title"));
        assert!(err.message.contains("`$.title`"), "{}", err.message);
        assert_eq!(err.status(), 422);
        let many = mapping(json!({"dedup_key": "$.a[*]", "title": "$.t",
            "status": {"default": "open"}, "severity": {"default": "minor"}}));
        let err = parse(&many, br#"{"a":[1,2],"t":"x"}"#).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("json.dedup_key"));
        assert!(err.message.contains("matched 2"), "{}", err.message);
        assert_eq!(parse(&datadog(), b"{").unwrap_err().status(), 400);
    }

    #[test]
    fn a_resolve_needs_only_key_and_status() {
        let alert = parse(&datadog(), br#"{"aggregate":"a","transition":"Recovered"}"#).unwrap();
        assert_eq!(alert.event, AlertEvent::Resolved);
    }

    #[test]
    fn an_incomplete_mapping_previews_what_it_has_and_lists_the_rest() {
        let partial = mapping(json!({"title": "$.title", "status": {"map": {"x": "open"}}}));
        let p = preview(&partial, DATADOG.as_bytes());
        assert!(!p.accepted);
        assert_eq!(p.incident.title.as_deref(), Some("[P1] CPU high on web-1"));
        assert_eq!(
            p.missing,
            ["json.dedup_key", "json.status.path", "json.severity"]
        );
        assert!(parse(&partial, DATADOG.as_bytes()).is_err());
        let none = preview(&JsonMapping::default(), DATADOG.as_bytes());
        assert_eq!(none.missing.len(), 4);
    }

    #[test]
    fn validation_names_bad_paths_and_missing_fields() {
        let bad = mapping(json!({"dedup_key": "$.id", "title": "title",
            "status": {"path": "$[", "default": "open"}, "severity": {"default": "minor"},
            "attributes": {"h": "$.h"}}));
        let errors = validate(&bad);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["json.title", "json.status.path"]);
        assert!(errors[1].message.starts_with("not a valid JSONPath"));
        assert!(validate(&datadog()).is_empty());
        let fields: Vec<String> = validate(&JsonMapping::default())
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "json.dedup_key",
                "json.title",
                "json.status",
                "json.severity"
            ]
        );
    }

    #[test]
    fn garbage_never_panics() {
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"\xff",
            b"{\"title\":\"\\ud800\"}",
            b"7",
        ] {
            let _ = preview(&datadog(), body);
            let _ = parse(&datadog(), body);
        }
    }
}
