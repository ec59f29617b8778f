//! Prometheus Alertmanager's webhook body (version 4). Lenient where Alertmanager may
//! grow (unknown keys are ignored) and where a person wrote the alert rule (long
//! summaries are cut, unknown severities become minor): an alert must not be refused
//! for a detail. One incident per alert fingerprint. Each alert of a body is parsed on
//! its own, so one malformed alert is refused without costing its neighbours.

use std::collections::BTreeMap;

use crate::source::Source;
use crate::Attributes;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::validate::{cut, limits, replace_nul};

use super::{checked_key, Alert, AlertEvent, AlertFields};
use crate::json::{from_value, parse_json, BodyError};

/// Annotations share the attribute map with labels under this prefix, so a label and
/// an annotation of one name never overwrite each other.
pub const ANNOTATION_PREFIX: &str = "annotations.";

/// An `alertmanager` source's body (public for the OpenAPI document only).
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = AlertmanagerBody)]
pub struct Body {
    /// `4` when given.
    #[serde(default)]
    version: Option<String>,
    #[schema(value_type = Vec<AmAlert>)]
    alerts: Vec<serde_json::Value>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = AlertmanagerAlert)]
pub struct AmAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

/// The body's alerts, each parsed or refused on its own; `Err` only when the body as a
/// whole is not an Alertmanager notification.
pub fn parse(body: &[u8], source: &Source) -> Result<Vec<Result<Alert, BodyError>>, BodyError> {
    let body: Body = parse_json(body)?;
    if let Some(version) = body.version.as_deref().filter(|v| *v != "4") {
        return Err(BodyError::field(
            "version",
            format!("unsupported Alertmanager webhook version `{version}`; expected 4"),
        ));
    }
    Ok(body
        .alerts
        .into_iter()
        .enumerate()
        .map(|(index, alert)| {
            let alert = from_value(alert).map_err(|e| within_alert(index, e))?;
            one(index, alert, source)
        })
        .collect())
}

/// An error about one alert's JSON, with its path from the body's root.
pub(super) fn within_alert(index: usize, err: BodyError) -> BodyError {
    let prefix = format!("alerts[{index}]");
    match err.field {
        Some(field) => BodyError::field(format!("{prefix}.{field}"), err.message),
        None => BodyError::field(prefix, err.message),
    }
}

fn one(index: usize, alert: AmAlert, source: &Source) -> Result<Alert, BodyError> {
    let path = |field: &str| format!("alerts[{index}].{field}");
    let dedup_key = match alert.fingerprint.as_deref() {
        Some(fingerprint) => checked_key(fingerprint, &path("fingerprint"))?,
        // Alertmanager has sent fingerprints since 0.19; for older senders the label set
        // identifies the alert just as well.
        None => label_fingerprint(&alert.labels),
    };
    let event = match alert.status.as_str() {
        "firing" => AlertEvent::Firing(labelled_fields(
            alert.labels,
            alert.annotations,
            source,
            "Alertmanager alert",
        )),
        "resolved" => AlertEvent::Resolved,
        other => {
            return Err(BodyError::field(
                path("status"),
                format!("unknown status `{other}`; expected firing or resolved"),
            ))
        }
    };
    Ok(Alert { dedup_key, event })
}

/// The fields of an alert in Alertmanager's shape (Grafana's too): title from the
/// `summary` annotation or `alertname` label, severity from the `severity` label, and
/// labels and annotations as attributes.
pub(super) fn labelled_fields(
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    source: &Source,
    fallback_title: &str,
) -> AlertFields {
    let title = non_empty(annotations.get("summary"))
        .or_else(|| non_empty(labels.get("alertname")))
        .unwrap_or(fallback_title);
    let title = cut(replace_nul(title.to_owned()), limits::TITLE);
    let description = non_empty(annotations.get("description"))
        .map(|d| cut(replace_nul(d.to_owned()), limits::DESCRIPTION));
    let severity = source.alertmanager_severity(labels.get("severity").map(String::as_str));
    let annotations = annotations
        .into_iter()
        .map(|(key, value)| (format!("{ANNOTATION_PREFIX}{key}"), value));
    let attributes: Attributes = labels
        .into_iter()
        .chain(annotations)
        .map(|(key, value)| {
            (
                cut(replace_nul(key), limits::ATTRIBUTE_NAME),
                cut(replace_nul(value), limits::ATTRIBUTE_VALUE),
            )
        })
        .collect();
    AlertFields {
        title,
        description,
        severity,
        attributes: Some(attributes),
    }
}

fn non_empty(value: Option<&String>) -> Option<&str> {
    value.map(|v| v.trim()).filter(|v| !v.is_empty())
}

pub(super) fn label_fingerprint(labels: &BTreeMap<String, String>) -> String {
    let mut hash = Sha256::new();
    for (key, value) in labels {
        hash.update(key.as_bytes());
        hash.update([0]);
        hash.update(value.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..8])
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
            kind: SourceKind::Alertmanager,
            name: "prom".into(),
            severity_map: [("page".to_owned(), Severity::Critical)].into(),
            servicenow: None,
            email: None,
            grafana: None,
            json: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    /// Shaped like a real Alertmanager 0.25 notification.
    const BODY: &str = r#"{
      "receiver": "snowbound", "status": "firing", "version": "4",
      "groupKey": "{}:{alertname=\"DiskFull\"}", "truncatedAlerts": 0,
      "groupLabels": {"alertname": "DiskFull"}, "commonLabels": {}, "commonAnnotations": {},
      "externalURL": "http://am:9093",
      "alerts": [
        {"status": "firing", "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db-1"},
         "annotations": {"summary": "Disk full on db-1", "description": "95% used"},
         "startsAt": "2024-05-01T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "http://prom/graph", "fingerprint": "a1b2c3"},
        {"status": "resolved", "labels": {"alertname": "CpuHigh", "severity": "page"},
         "annotations": {}, "startsAt": "2024-05-01T10:00:00Z",
         "endsAt": "2024-05-01T10:05:00Z", "fingerprint": "d4e5f6"},
        {"status": "firing", "labels": {"alertname": "Odd", "severity": "info"},
         "fingerprint": "0718"}
      ]
    }"#;

    fn alerts(body: &str) -> Vec<Alert> {
        parse(body.as_bytes(), &source())
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_real_notification_becomes_one_alert_per_fingerprint() {
        let alerts = alerts(BODY);
        assert_eq!(alerts.len(), 3);
        assert_eq!(alerts[0].dedup_key, "a1b2c3");
        let AlertEvent::Firing(first) = &alerts[0].event else {
            panic!("firing")
        };
        assert_eq!(first.title, "Disk full on db-1");
        assert_eq!(first.description.as_deref(), Some("95% used"));
        assert_eq!(first.severity, Severity::Critical);
        let attrs = first.attributes.as_ref().unwrap();
        assert_eq!(attrs["instance"], "db-1");
        assert_eq!(attrs["annotations.summary"], "Disk full on db-1");
        assert_eq!(alerts[1].event, AlertEvent::Resolved);
        let AlertEvent::Firing(odd) = &alerts[2].event else {
            panic!("firing")
        };
        assert_eq!(odd.title, "Odd");
        assert_eq!(odd.severity, Severity::Minor);
    }

    #[test]
    fn the_source_maps_severities() {
        let body =
            r#"{"alerts":[{"status":"firing","labels":{"severity":"page"},"fingerprint":"f"}]}"#;
        let alerts = alerts(body);
        let AlertEvent::Firing(fields) = &alerts[0].event else {
            panic!("firing")
        };
        assert_eq!(fields.severity, Severity::Critical);
        assert_eq!(fields.title, "Alertmanager alert");
    }

    #[test]
    fn without_a_fingerprint_the_labels_identify_the_alert() {
        let body =
            |order: &str| format!(r#"{{"alerts":[{{"status":"firing","labels":{order}}}]}}"#);
        let a = alerts(&body(r#"{"a":"1","b":"2"}"#));
        let b = alerts(&body(r#"{"b":"2","a":"1"}"#));
        let c = alerts(&body(r#"{"a":"12"}"#));
        assert_eq!(a[0].dedup_key, b[0].dedup_key);
        assert_ne!(a[0].dedup_key, c[0].dedup_key);
    }

    #[test]
    fn problems_name_their_field() {
        let field = |body: &str| parse(body.as_bytes(), &source()).unwrap_err().field;
        assert_eq!(field(r#"{"version":"4"}"#).as_deref(), Some("alerts"));
        assert_eq!(
            field(r#"{"version":"3","alerts":[]}"#).as_deref(),
            Some("version")
        );
        let alert_field = |body: &str| {
            let mut alerts = parse(body.as_bytes(), &source()).unwrap();
            alerts.pop().unwrap().unwrap_err().field.unwrap()
        };
        assert_eq!(
            alert_field(r#"{"alerts":[{"status":"pending","fingerprint":"f"}]}"#),
            "alerts[0].status"
        );
        assert_eq!(
            alert_field(r#"{"alerts":[{"status":"firing"},{"status":"firing","labels":{"a":1}}]}"#),
            "alerts[1].labels.a"
        );
        assert_eq!(alert_field(r#"{"alerts":[7]}"#), "alerts[0]");
        assert_eq!(alert_field(r#"{"alerts":[{}]}"#), "alerts[0].status");
        for garbage in ["", "[]", "{\"alerts\":{}}", "\u{0}"] {
            assert!(parse(garbage.as_bytes(), &source()).is_err());
        }
    }
}
