//! Grafana Alerting's webhook contact point: Alertmanager's shape (`alerts[]` with
//! `status`, `labels`, `annotations`, `fingerprint`) plus `orgId`, `state`, each alert's
//! `values` and links, and the templated `title`/`message` of the notification. Lenient
//! like the Alertmanager parser (unknown keys ignored, long text cut); one incident per
//! alert fingerprint, each alert parsed on its own.
//!
//! A source may share a secret with Grafana: Grafana then signs each request with
//! HMAC-SHA256 (hex) in a header, over `timestamp:body` when a timestamp header is
//! configured, else over the body alone. [`verify_signature`] checks it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use super::alertmanager::{label_fingerprint, labelled_fields, within_alert};
use super::{checked_key, Alert, AlertEvent};
use crate::json::{from_value, parse_json, BodyError};
use crate::source::Source;
use crate::validate::{check_text, cut, limits, replace_nul, FieldError};

/// Grafana's header for the signature when the contact point names none.
pub const DEFAULT_SIGNATURE_HEADER: &str = "X-Grafana-Alerting-Signature";

/// A signed timestamp older or newer than this is refused: a recorded request cannot be
/// replayed later, and a clock a little off still works.
pub const TIMESTAMP_TOLERANCE_S: i64 = 300;

/// Attribute name prefixes of what Grafana adds to Alertmanager's shape.
pub const VALUE_PREFIX: &str = "values.";

/// The non-secret half of a Grafana source's signature settings; the shared secret is
/// sealed in the store, and only whether one is set is known here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrafanaSettings {
    /// The header carrying the signature; [`DEFAULT_SIGNATURE_HEADER`] when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_header: Option<String>,
    /// The header carrying the Unix timestamp Grafana signs with the body, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    /// Whether a shared secret is stored: the store says so, never a client.
    #[serde(skip)]
    pub hmac_secret_set: bool,
}

impl GrafanaSettings {
    pub fn signature_header(&self) -> &str {
        self.hmac_header
            .as_deref()
            .unwrap_or(DEFAULT_SIGNATURE_HEADER)
    }

    /// The headers' names, checked as HTTP header names (`grafana.hmac_header`, …).
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (field, value) in [
            ("grafana.hmac_header", &self.hmac_header),
            ("grafana.timestamp_header", &self.timestamp_header),
        ] {
            if let Some(name) = value {
                if let Err(message) = check_header_name(name) {
                    errors.push(FieldError::new(field, message));
                }
            }
        }
        errors
    }
}

/// RFC 9110's `token`: what an HTTP header name may be made of.
fn check_header_name(name: &str) -> Result<(), String> {
    check_text(name, 100)?;
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("`{name}` is not an HTTP header name"));
    }
    Ok(())
}

/// Why a request's signature was refused (HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the request carries no `{0}` header; Grafana signs with the secret configured on this source")]
    Missing(String),
    #[error("the request carries no `{0}` timestamp header, which this source's signature covers")]
    MissingTimestamp(String),
    #[error("the `{0}` timestamp is not a Unix time within {TIMESTAMP_TOLERANCE_S} s of now")]
    Stale(String),
    #[error("the `{0}` signature does not match the body and this source's secret")]
    Wrong(String),
}

/// Checks Grafana's signature of `body`; `header` looks a request header up by name.
pub fn verify_signature<'a>(
    secret: &[u8],
    settings: &GrafanaSettings,
    header: impl Fn(&str) -> Option<&'a str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let name = settings.signature_header();
    let signature = header(name).ok_or_else(|| SignatureError::Missing(name.to_owned()))?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    if let Some(ts_name) = &settings.timestamp_header {
        let timestamp =
            header(ts_name).ok_or_else(|| SignatureError::MissingTimestamp(ts_name.clone()))?;
        let fresh = timestamp
            .trim()
            .parse::<i64>()
            .is_ok_and(|ts| (now.timestamp() - ts).abs() <= TIMESTAMP_TOLERANCE_S);
        if !fresh {
            return Err(SignatureError::Stale(ts_name.clone()));
        }
        mac.update(timestamp.as_bytes());
        mac.update(b":");
    }
    mac.update(body);
    let wrong = || SignatureError::Wrong(name.to_owned());
    let given = hex::decode(signature.trim()).map_err(|_| wrong())?;
    // Constant time: a timing difference would let a forger learn the signature.
    mac.verify_slice(&given).map_err(|_| wrong())
}

#[derive(Deserialize)]
struct Body {
    alerts: Vec<Value>,
    #[serde(default, rename = "orgId")]
    org_id: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
struct GrafanaAlert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    fingerprint: Option<String>,
    #[serde(default)]
    values: Option<BTreeMap<String, Value>>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
    #[serde(default, rename = "silenceURL")]
    silence_url: Option<String>,
    #[serde(default, rename = "dashboardURL")]
    dashboard_url: Option<String>,
    #[serde(default, rename = "panelURL")]
    panel_url: Option<String>,
}

/// The body's alerts, each parsed or refused on its own; `Err` only when the body as a
/// whole is not a Grafana notification.
pub fn parse(body: &[u8], source: &Source) -> Result<Vec<Result<Alert, BodyError>>, BodyError> {
    let body: Body = parse_json(body)?;
    // The notification's message speaks of every alert in it: it describes one alone.
    let message = match body.alerts.len() {
        1 => body.message.as_deref().filter(|m| !m.trim().is_empty()),
        _ => None,
    };
    let org_id = body.org_id.as_ref().and_then(scalar_text);
    Ok(body
        .alerts
        .into_iter()
        .enumerate()
        .map(|(index, alert)| {
            let alert = from_value(alert).map_err(|e| within_alert(index, e))?;
            let shared = Shared {
                message,
                title: body.title.as_deref(),
                org_id: org_id.as_deref(),
            };
            one(index, alert, &shared, source)
        })
        .collect())
}

/// What the notification says once for all its alerts.
struct Shared<'a> {
    message: Option<&'a str>,
    title: Option<&'a str>,
    org_id: Option<&'a str>,
}

fn one(
    index: usize,
    alert: GrafanaAlert,
    shared: &Shared,
    source: &Source,
) -> Result<Alert, BodyError> {
    let path = |field: &str| format!("alerts[{index}].{field}");
    let dedup_key = match alert.fingerprint.as_deref() {
        Some(fingerprint) => checked_key(fingerprint, &path("fingerprint"))?,
        None => label_fingerprint(&alert.labels),
    };
    let event = match alert.status.as_str() {
        "firing" => {
            let extra = extra_attributes(&alert, shared);
            let fallback = shared
                .title
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .unwrap_or("Grafana alert");
            let mut fields = labelled_fields(alert.labels, alert.annotations, source, fallback);
            if fields.description.is_none() {
                fields.description = shared
                    .message
                    .map(|m| cut(replace_nul(m.to_owned()), limits::DESCRIPTION));
            }
            if let Some(attributes) = &mut fields.attributes {
                attributes.extend(extra);
            }
            AlertEvent::Firing(fields)
        }
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

/// The evaluated values (`values.B` = `44.2`), the links and the organisation.
fn extra_attributes(alert: &GrafanaAlert, shared: &Shared) -> Vec<(String, String)> {
    let values = alert.values.iter().flatten().filter_map(|(name, value)| {
        scalar_text(value).map(|text| (format!("{VALUE_PREFIX}{name}"), text))
    });
    let links = [
        ("grafana.generator_url", &alert.generator_url),
        ("grafana.silence_url", &alert.silence_url),
        ("grafana.dashboard_url", &alert.dashboard_url),
        ("grafana.panel_url", &alert.panel_url),
    ]
    .into_iter()
    .filter_map(|(name, url)| {
        url.as_deref()
            .filter(|u| !u.is_empty())
            .map(|u| (name.to_owned(), u.to_owned()))
    });
    let org = shared
        .org_id
        .map(|org| ("grafana.org_id".to_owned(), org.to_owned()));
    values
        .chain(links)
        .chain(org)
        .map(|(key, value)| {
            (
                cut(replace_nul(key), limits::ATTRIBUTE_NAME),
                cut(replace_nul(value), limits::ATTRIBUTE_VALUE),
            )
        })
        .collect()
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceKind;
    use crate::Severity;
    use uuid::Uuid;

    fn source() -> Source {
        Source {
            id: Uuid::now_v7(),
            team_id: Uuid::now_v7(),
            kind: SourceKind::Grafana,
            name: "grafana".into(),
            severity_map: Default::default(),
            servicenow: None,
            email: None,
            grafana: Some(GrafanaSettings::default()),
            json: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    /// Shaped like Grafana 11's documented webhook notification.
    const BODY: &str = r#"{
      "receiver": "snowbound", "status": "firing", "orgId": 1,
      "alerts": [
        {"status": "firing",
         "labels": {"alertname": "High memory usage", "team": "blue", "severity": "critical"},
         "annotations": {"description": "The system has high memory usage", "summary": "Memory high in us-1"},
         "startsAt": "2024-10-12T09:51:03.157076+02:00", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "https://grafana.example/alerting/grafana/abc/view",
         "fingerprint": "c6eadffa33fcdf37",
         "silenceURL": "https://grafana.example/alerting/silence/new", "dashboardURL": "", "panelURL": "",
         "values": {"B": 44.23943737541908, "C": 1, "D": null},
         "valueString": "[ var='B' labels={} value=44.2 ]"},
        {"status": "resolved", "labels": {"alertname": "Disk"}, "annotations": {},
         "fingerprint": "0b1c", "values": null}
      ],
      "groupLabels": {}, "commonLabels": {"team": "blue"}, "commonAnnotations": {},
      "externalURL": "https://grafana.example/", "version": "1",
      "groupKey": "{}:{alertname=\"High memory usage\"}", "truncatedAlerts": 0,
      "title": "[FIRING:1] (High memory usage blue)", "state": "alerting",
      "message": "**Firing**\n\nValue: B=44.2"
    }"#;

    #[test]
    fn a_notification_becomes_one_alert_per_fingerprint() {
        let alerts: Vec<Alert> = parse(BODY.as_bytes(), &source())
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[0].dedup_key, "c6eadffa33fcdf37");
        let AlertEvent::Firing(fields) = &alerts[0].event else {
            panic!("firing")
        };
        assert_eq!(fields.title, "Memory high in us-1");
        assert_eq!(fields.severity, Severity::Critical);
        let attributes = fields.attributes.as_ref().unwrap();
        assert_eq!(attributes["values.B"], "44.23943737541908");
        assert!(!attributes.contains_key("values.D"));
        assert_eq!(attributes["grafana.org_id"], "1");
        assert!(!attributes.contains_key("grafana.dashboard_url"));
        assert_eq!(alerts[1].dedup_key, "0b1c");
        assert_eq!(alerts[1].event, AlertEvent::Resolved);
    }

    #[test]
    fn a_lone_alert_without_text_takes_the_notifications() {
        let body = r#"{"alerts":[{"status":"firing","labels":{},"fingerprint":"f"}],
                       "title":"[FIRING:1] cpu","message":"all of it"}"#;
        let alert = parse(body.as_bytes(), &source())
            .unwrap()
            .remove(0)
            .unwrap();
        let AlertEvent::Firing(fields) = alert.event else {
            panic!("firing")
        };
        assert_eq!(fields.title, "[FIRING:1] cpu");
        assert_eq!(fields.description.as_deref(), Some("all of it"));
        assert_eq!(fields.severity, Severity::Minor);
    }

    #[test]
    fn problems_name_their_field() {
        let body = r#"{"alerts":[{"status":"pending","fingerprint":"f"}]}"#;
        let err = parse(body.as_bytes(), &source())
            .unwrap()
            .remove(0)
            .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("alerts[0].status"));
        assert_eq!(
            parse(b"{}", &source()).unwrap_err().field.as_deref(),
            Some("alerts")
        );
        for garbage in [&b""[..], b"[]", b"{\"alerts\":{}}", b"\xff"] {
            assert!(parse(garbage, &source()).is_err());
        }
    }

    fn sign(secret: &str, message: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(message.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn signatures_over_the_body_or_timestamp_and_body() {
        let now = Utc::now();
        let plain = GrafanaSettings::default();
        let good = sign("s3cret", "{}");
        let check = |settings: &GrafanaSettings, pairs: Vec<(&'static str, String)>| {
            let lookup = |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
            };
            verify_signature(b"s3cret", settings, lookup, b"{}", now)
        };
        assert_eq!(
            check(&plain, vec![("x-grafana-alerting-signature", good.clone())]),
            Ok(())
        );
        assert!(matches!(
            check(
                &plain,
                vec![("X-Grafana-Alerting-Signature", sign("other", "{}"))]
            ),
            Err(SignatureError::Wrong(_))
        ));
        assert!(matches!(
            check(&plain, vec![("X-Grafana-Alerting-Signature", "zz".into())]),
            Err(SignatureError::Wrong(_))
        ));
        assert!(matches!(
            check(&plain, vec![]),
            Err(SignatureError::Missing(_))
        ));
        let stamped = GrafanaSettings {
            hmac_header: Some("X-Sig".into()),
            timestamp_header: Some("X-Ts".into()),
            hmac_secret_set: true,
        };
        let ts = now.timestamp().to_string();
        let over = sign("s3cret", &format!("{ts}:{{}}"));
        assert_eq!(
            check(
                &stamped,
                vec![("X-Sig", over.clone()), ("X-Ts", ts.clone())]
            ),
            Ok(())
        );
        // The body alone is not what a stamped source signs.
        assert!(matches!(
            check(&stamped, vec![("X-Sig", good), ("X-Ts", ts)]),
            Err(SignatureError::Wrong(_))
        ));
        let old = (now.timestamp() - TIMESTAMP_TOLERANCE_S - 1).to_string();
        let old_sig = sign("s3cret", &format!("{old}:{{}}"));
        assert!(matches!(
            check(&stamped, vec![("X-Sig", old_sig), ("X-Ts", old)]),
            Err(SignatureError::Stale(_))
        ));
        assert!(matches!(
            check(&stamped, vec![("X-Sig", over)]),
            Err(SignatureError::MissingTimestamp(_))
        ));
    }

    #[test]
    fn header_names_are_checked() {
        let settings = GrafanaSettings {
            hmac_header: Some("X Sig".into()),
            timestamp_header: Some("X-Ts".into()),
            hmac_secret_set: false,
        };
        let errors = settings.validate();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "grafana.hmac_header");
    }
}
