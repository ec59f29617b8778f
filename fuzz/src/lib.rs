//! Shared fixtures of the fuzz targets.

use snowbound_core::source::{Source, SourceKind};
use snowbound_core::Severity;

/// A source with a severity map, so mapped words are exercised too.
pub fn source() -> Source {
    Source {
        id: uuid::Uuid::nil(),
        team_id: uuid::Uuid::nil(),
        kind: SourceKind::Webhook,
        name: "fuzz".into(),
        severity_map: [("p1".to_owned(), Severity::Critical)].into(),
        servicenow: None,
        email: None,
        grafana: None,
        json: None,
        created_at: chrono::DateTime::UNIX_EPOCH,
        updated_at: chrono::DateTime::UNIX_EPOCH,
    }
}
