//! Fixtures both engine test binaries use: an incident linked to an integration, and a
//! change written the way the incident service writes one.

#![allow(dead_code)] // each binary uses a part

use chrono::Utc;
use snowbound_core::{new_id, Incident, IncidentStatus, Severity};
use snowbound_store::{NewLink, Store};
use uuid::Uuid;

/// An open critical incident of `team_id`, linked to `integration_id`.
pub async fn linked_incident(
    store: &dyn Store,
    team_id: Uuid,
    integration_id: Uuid,
    title: &str,
) -> Incident {
    let now = Utc::now();
    let incident = Incident {
        id: new_id(),
        team_id,
        title: title.into(),
        description: String::new(),
        severity: Severity::Critical,
        status: IncidentStatus::Open,
        attributes: Default::default(),
        resolve_comment: None,
        source_id: None,
        created_at: now,
        updated_at: now,
    };
    let link = NewLink {
        incident_id: incident.id,
        integration_id,
        snapshot: None,
    };
    store
        .create_incident(&incident, &[], &[link])
        .await
        .unwrap();
    incident
}

/// Applies `edit` to the stored incident and writes it (bumping its links).
pub async fn edit_incident(
    store: &dyn Store,
    id: Uuid,
    edit: impl FnOnce(&mut Incident),
) -> Incident {
    let mut changed = store.get_incident(id).await.unwrap();
    let before = changed.updated_at;
    edit(&mut changed);
    changed.updated_at = Utc::now() + chrono::Duration::milliseconds(1);
    store
        .update_incident(&changed, before, &[], &[])
        .await
        .unwrap();
    changed
}
