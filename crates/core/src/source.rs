//! Alert sources: where incidents come from besides people. Each source belongs to one
//! team and is addressed by a secret ingest URL.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::inbound::ServiceNowSourceSettings;
use crate::ingest::email::EmailSettings;
use crate::ingest::grafana::GrafanaSettings;
use crate::ingest::json_mapping::JsonMapping;
use crate::model::Severity;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Snowbound's own JSON body: `{dedup_key, status, title, severity, …}`.
    Webhook,
    /// The body Prometheus Alertmanager's webhook receiver sends (version 4).
    Alertmanager,
    /// Pokes (`{sys_id, table}`) and polls that make Snowbound read ServiceNow itself.
    Servicenow,
    /// Mail to `<secret>@<SNOWBOUND_SMTP_DOMAIN>`, received by the SMTP listener.
    Email,
    /// Grafana Alerting's webhook contact point, optionally HMAC-signed.
    Grafana,
    /// Any JSON body, read through the admin's JSONPath mapping.
    Json,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Webhook => "webhook",
            SourceKind::Alertmanager => "alertmanager",
            SourceKind::Servicenow => "servicenow",
            SourceKind::Email => "email",
            SourceKind::Grafana => "grafana",
            SourceKind::Json => "json",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "webhook" => Some(SourceKind::Webhook),
            "alertmanager" => Some(SourceKind::Alertmanager),
            "servicenow" => Some(SourceKind::Servicenow),
            "email" => Some(SourceKind::Email),
            "grafana" => Some(SourceKind::Grafana),
            "json" => Some(SourceKind::Json),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub id: Uuid,
    pub team_id: Uuid,
    #[serde(rename = "type")]
    pub kind: SourceKind,
    pub name: String,
    /// The sender's severity words (lowercase) → ours, consulted before the defaults.
    #[serde(default)]
    pub severity_map: BTreeMap<String, Severity>,
    /// Set exactly when `kind` is `servicenow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servicenow: Option<ServiceNowSourceSettings>,
    /// Set exactly when `kind` is `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSettings>,
    /// Set exactly when `kind` is `grafana`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grafana: Option<GrafanaSettings>,
    /// A `json` source's mapping; `None` until the admin saves one (payloads are kept
    /// meanwhile, to build it on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonMapping>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Source {
    /// The severity for a sender's word: the source's own map first, then our names.
    /// `None` when neither knows the word; each kind decides what that means.
    pub fn map_severity(&self, word: &str) -> Option<Severity> {
        let word = word.trim().to_ascii_lowercase();
        self.severity_map
            .get(&word)
            .copied()
            .or_else(|| word.parse().ok())
    }

    /// Alertmanager's `severity` label: unknown or missing → minor, as alerts must never
    /// be refused for a label we do not know.
    pub fn alertmanager_severity(&self, label: Option<&str>) -> Severity {
        label
            .and_then(|word| self.map_severity(word))
            .unwrap_or(Severity::Minor)
    }

    /// The timeline actor of this source's changes.
    pub fn actor(&self) -> String {
        format!("source {}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(map: &[(&str, Severity)]) -> Source {
        Source {
            id: Uuid::now_v7(),
            team_id: Uuid::now_v7(),
            kind: SourceKind::Alertmanager,
            name: "prom".into(),
            severity_map: map.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            servicenow: None,
            email: None,
            grafana: None,
            json: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn alertmanager_severity_defaults_and_overrides() {
        let plain = source(&[]);
        assert_eq!(
            plain.alertmanager_severity(Some("critical")),
            Severity::Critical
        );
        assert_eq!(
            plain.alertmanager_severity(Some("warning")),
            Severity::Warning
        );
        assert_eq!(plain.alertmanager_severity(Some("page")), Severity::Minor);
        assert_eq!(plain.alertmanager_severity(None), Severity::Minor);
        let mapped = source(&[
            ("page", Severity::Critical),
            ("critical", Severity::Warning),
        ]);
        assert_eq!(
            mapped.alertmanager_severity(Some("PAGE")),
            Severity::Critical
        );
        assert_eq!(
            mapped.alertmanager_severity(Some("critical")),
            Severity::Warning
        );
    }

    #[test]
    fn webhook_words_unknown_to_both_maps_are_none() {
        assert_eq!(source(&[]).map_severity("sev1"), None);
        assert_eq!(
            source(&[("sev1", Severity::Critical)]).map_severity("sev1"),
            Some(Severity::Critical)
        );
    }
}
