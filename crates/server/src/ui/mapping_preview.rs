//! The settings page's preview for a chosen incident: the requests the next sync would
//! send, computed by the engine's own functions (`mapped_desired`, `plan_sync`) with the
//! incident's attributes, its team's name and its team's routing rules, so field
//! mappings and rules' `set_fields` show as they will reach ServiceNow.

use snowbound_core::routing::set_fields;
use snowbound_core::{plan_sync, FieldMap, Integration, SyncPlan};
use snowbound_engine::{mapped_desired, subject_of, MappingContext};
use snowbound_services::incidents::IncidentQuery;
use snowbound_store::StoreError;
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
        .await?;
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
    let link = match state.store.get_link(incident.id, integration.id).await {
        Ok(link) => Some(link),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(crate::error::ApiError::from(e).into()),
    };
    let team = state.store.get_team(incident.team_id).await?.name;
    let rules = state
        .store
        .list_routing_rules(Some(&[incident.team_id]))
        .await?;
    let context = MappingContext {
        team,
        rule_fields: set_fields(&rules, &incident),
    };
    let (subject, follows_updates) = subject_of(link.as_ref(), &incident);
    let mut preview = IncidentPreview {
        incident_id,
        title: incident.title.clone(),
        linked: link.is_some(),
        requests: Vec::new(),
        display_fields: Vec::new(),
        error: None,
    };
    let desired = match mapped_desired(
        &subject,
        &incident,
        integration,
        state.public_url(),
        &context,
    ) {
        Ok(desired) => desired,
        Err(why) => {
            preview.error = Some(why);
            return Ok(preview);
        }
    };
    let settings = &integration.servicenow;
    let collection = format!("/api/now/table/{}", settings.table);
    let (sys_id, pushed) = match &link {
        Some(link) => (link.sys_id.clone(), link.pushed.clone()),
        None => (None, FieldMap::new()),
    };
    let record = format!("{collection}/{}", sys_id.as_deref().unwrap_or("{sys_id}"));
    let plan = plan_sync(
        &desired.fields,
        &pushed,
        sys_id.is_some(),
        follows_updates,
        settings,
    );
    let (fields, first) = match &plan {
        SyncPlan::Create(fields) => (fields, ("Create", format!("POST {collection}"))),
        SyncPlan::Update(fields) => (fields, ("Update", format!("PATCH {record}"))),
        SyncPlan::UpToDate => return Ok(preview),
    };
    // As the engine sends them: internal values first, display values in a request of
    // their own (the flag covers a whole request).
    let (internal, display) = desired.split(fields);
    if !internal.is_empty() || matches!(plan, SyncPlan::Create(_)) {
        preview.requests.push(PreviewRequest {
            title: first.0.to_owned(),
            line: first.1,
            body: pretty(&internal),
        });
    }
    if !display.is_empty() {
        preview.display_fields = display.keys().cloned().collect();
        preview.requests.push(PreviewRequest {
            title: "Display values, resolved by ServiceNow".to_owned(),
            line: format!("PATCH {record}?sysparm_input_display_value=true"),
            body: pretty(&display),
        });
    }
    Ok(preview)
}
