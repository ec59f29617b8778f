//! The settings page's preview for a chosen incident: the requests the next sync would
//! send (`crate::preview`), as the page shows them.

use snowbound_core::{FieldMap, Integration};
use snowbound_services::incidents::IncidentQuery;
use uuid::Uuid;

use super::layout::UiResult;
use crate::auth::Caller;
use crate::state::AppState;

/// Incidents offered in the preview's list.
const PREVIEW_CHOICES: u32 = 50;

pub struct PreviewRequest {
    pub title: String,
    pub line: String,
    pub body: String,
}

pub struct IncidentPreview {
    pub incident_id: Uuid,
    pub title: String,
    pub linked: bool,
    pub requests: Vec<PreviewRequest>,
    /// Fields sent as display values, which ServiceNow resolves to sys_ids.
    pub display_fields: Vec<String>,
    /// A template that failed to render, named by its mapping.
    pub error: Option<String>,
}

/// The latest incidents of the teams the integration serves, as (id, "title (severity)").
pub async fn preview_choices(
    state: &AppState,
    caller: &Caller,
    integration: &Integration,
) -> UiResult<Vec<(Uuid, String)>> {
    let incidents = state
        .incidents()
        .list(
            caller,
            IncidentQuery {
                limit: Some(PREVIEW_CHOICES),
                ..IncidentQuery::default()
            },
        )
        .await?
        .incidents;
    Ok(incidents
        .into_iter()
        .filter(|i| integration.serves_team(i.team_id))
        .map(|i| {
            (
                i.id,
                format!(
                    "{} ({}, {})",
                    i.title,
                    i.severity.as_str(),
                    i.status.as_str()
                ),
            )
        })
        .collect())
}

fn pretty(fields: &FieldMap) -> String {
    serde_json::to_string_pretty(fields).unwrap_or_default()
}

pub async fn incident_preview(
    state: &AppState,
    caller: &Caller,
    integration: &Integration,
    incident_id: Uuid,
) -> UiResult<IncidentPreview> {
    let incident = state.incidents().visible(caller, incident_id).await?;
    let planned = crate::preview::next_sync(state, integration, &incident).await?;
    Ok(IncidentPreview {
        incident_id,
        title: incident.title.clone(),
        linked: planned.linked,
        requests: planned
            .requests
            .into_iter()
            .map(|request| PreviewRequest {
                title: match (request.method, request.display_values) {
                    (_, true) => "Display values, resolved by ServiceNow",
                    ("POST", _) => "Create",
                    ("GET", _) => "Look for a record a lost create may have made",
                    _ => "Update",
                }
                .to_owned(),
                line: format!("{} {}", request.method, request.path),
                body: request.body.as_ref().map(pretty).unwrap_or_default(),
            })
            .collect(),
        display_fields: planned.display_fields,
        error: planned.error,
    })
}
