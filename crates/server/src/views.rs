//! JSON shapes of the answers. The domain types serialize as they are; these add what a
//! client needs next to them (timeline, links with readable states, the integration type).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use snowbound_core::inbound::LinkNote;
use snowbound_core::{Incident, TimelineEntry};
use snowbound_services::incidents::record_gone;
use snowbound_store::{IntegrationRecord, Link, LinkState};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IncidentView {
    #[serde(flatten)]
    pub incident: Incident,
    pub timeline: Vec<TimelineEntry>,
    pub links: Vec<LinkView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LinkView {
    pub integration_id: Uuid,
    pub integration_name: String,
    pub sys_id: Option<String>,
    pub number: Option<String>,
    /// pending | synced | retrying | parked, or waiting while the integration is failing
    /// or paused (the link itself is fine; its integration cannot be called).
    #[schema(value_type = String, example = "synced")]
    pub state: &'static str,
    pub last_error: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Parked because the record no longer exists in ServiceNow: `POST …/recreate`
    /// creates it again.
    pub record_gone: bool,
    /// Fields ServiceNow and Snowbound disagree on (drift) or that Snowbound re-asserted
    /// over an agent's change, as the inbound direction last saw them.
    pub notes: Vec<LinkNote>,
}

impl LinkView {
    pub fn new(link: Link, integration: Option<&IntegrationRecord>, now: DateTime<Utc>) -> Self {
        let waiting = integration.is_some_and(|record| {
            record.health.failing.is_some()
                || record.health.paused_until.is_some_and(|until| until > now)
        });
        let state = if waiting && link.state != LinkState::Synced {
            "waiting"
        } else {
            link.state.as_str()
        };
        let gone = record_gone(&link);
        let last_error = match integration.and_then(|r| r.health.failing.as_deref()) {
            Some(failing) if waiting && link.last_error.is_none() => Some(failing.to_owned()),
            _ => link.last_error,
        };
        LinkView {
            integration_id: link.integration_id,
            integration_name: integration
                .map(|r| r.integration.display_name.clone())
                .unwrap_or_else(|| "(deleted integration)".into()),
            sys_id: link.sys_id,
            number: link.number,
            state,
            last_error,
            attempts: link.attempts,
            next_attempt_at: link.next_attempt_at,
            last_synced_at: link.last_synced_at,
            record_gone: gone,
            notes: Vec::new(),
        }
    }
}

pub async fn incident_view(state: &AppState, incident: Incident) -> ApiResult<IncidentView> {
    let timeline = state.store.timeline(incident.id).await?;
    let links = state.store.links_of_incident(incident.id).await?;
    let integrations: HashMap<Uuid, IntegrationRecord> = if links.is_empty() {
        HashMap::new()
    } else {
        state
            .store
            .list_integrations()
            .await?
            .into_iter()
            .map(|r| (r.integration.id, r))
            .collect()
    };
    let now = Utc::now();
    let mut views = Vec::with_capacity(links.len());
    for link in links {
        let notes = match &link.sys_id {
            Some(sys_id) => state
                .store
                .inbound_link(link.integration_id, sys_id)
                .await?
                .filter(|found| found.link.incident_id == link.incident_id)
                .map(|found| found.notes.into_values().collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let integration = integrations.get(&link.integration_id);
        let mut view = LinkView::new(link, integration, now);
        view.notes = notes;
        views.push(view);
    }
    let links = views;
    Ok(IncidentView {
        incident,
        timeline,
        links,
    })
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IntegrationView {
    #[serde(flatten)]
    pub record: IntegrationRecord,
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "servicenow")]
    pub kind: &'static str,
    /// Mapped values that ServiceNow's choice lists do not know (create and PATCH only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
    /// How this node syncs to it now; absent where no engine runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SyncView {
    pub concurrency: ConcurrencyView,
}

/// Calls in flight this node allows the integration now (adaptive concurrency) and the
/// most it may grow to (`SNOWBOUND_SERVICENOW_CONCURRENCY`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConcurrencyView {
    pub current: usize,
    pub ceiling: usize,
}

impl IntegrationView {
    pub fn new(record: IntegrationRecord) -> Self {
        IntegrationView {
            record,
            kind: "servicenow",
            warnings: None,
            sync: None,
        }
    }

    /// With what `engine` knows of the integration now.
    pub fn with_engine(mut self, engine: Option<&snowbound_engine::Engine>) -> Self {
        self.sync = engine.map(|engine| {
            let concurrency = engine.concurrency(self.record.integration.id);
            SyncView {
                concurrency: ConcurrencyView {
                    current: concurrency.current,
                    ceiling: concurrency.ceiling,
                },
            }
        });
        self
    }
}
