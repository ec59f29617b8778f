//! What the next sync of an incident would send to an integration, computed by the
//! engine's own functions (`mapped_desired`, `plan_sync`) with the incident's attributes,
//! its team's name and its team's routing rules, so field mappings and rules'
//! `set_fields` show as they will reach ServiceNow. The API's preview and the settings
//! page's both come from here.

use serde::Serialize;
use snowbound_core::routing::set_fields;
use snowbound_core::{plan_sync, FieldMap, Incident, Integration, SyncPlan};
use snowbound_engine::{mapped_desired, subject_of, MappingContext};
use snowbound_store::StoreError;

use crate::error::ApiResult;
use crate::state::AppState;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlannedRequest {
    #[schema(value_type = String, example = "PATCH")]
    pub method: &'static str,
    pub path: String,
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    pub body: Option<FieldMap>,
    /// Sent with `sysparm_input_display_value=true`: ServiceNow resolves the display
    /// values (a group's name) to sys_ids.
    pub display_values: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Planned {
    pub linked: bool,
    pub requests: Vec<PlannedRequest>,
    /// Fields sent as display values.
    pub display_fields: Vec<String>,
    /// A template that failed to render, named by its mapping: the engine would park
    /// the link with this.
    pub error: Option<String>,
}

pub async fn next_sync(
    state: &AppState,
    integration: &Integration,
    incident: &Incident,
) -> ApiResult<Planned> {
    let link = match state.store.get_link(incident.id, integration.id).await {
        Ok(link) => Some(link),
        Err(StoreError::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let team = state.store.get_team(incident.team_id).await?.name;
    let rules = state
        .store
        .list_routing_rules(Some(&[incident.team_id]))
        .await?;
    let context = MappingContext {
        team,
        rule_fields: set_fields(&rules, incident, chrono::Utc::now()),
    };
    let mut planned = Planned {
        linked: link.is_some(),
        requests: Vec::new(),
        display_fields: Vec::new(),
        error: None,
    };
    let (subject, follows_updates) = subject_of(link.as_ref(), incident);
    let desired = match mapped_desired(
        &subject,
        incident,
        integration,
        state.public_url(),
        &context,
    ) {
        Ok(desired) => desired,
        Err(why) => {
            planned.error = Some(why);
            return Ok(planned);
        }
    };
    let settings = &integration.servicenow;
    let collection = format!("/api/now/table/{}", settings.table);
    let (sys_id, mut pushed) = match &link {
        Some(link) => (link.sys_id.clone(), link.pushed.clone()),
        None => (None, FieldMap::new()),
    };
    if sys_id.is_none() && link.as_ref().is_some_and(|l| l.create_unsure) {
        // A create may have landed without us seeing the answer: the engine looks first,
        // and resends everything if it finds the record.
        planned.requests.push(PlannedRequest {
            method: "GET",
            path: format!("{collection}?sysparm_query=correlation_id={}", incident.id),
            body: None,
            display_values: false,
        });
        pushed = FieldMap::new();
    }
    let record = format!("{collection}/{}", sys_id.as_deref().unwrap_or("{sys_id}"));
    let plan = plan_sync(
        &desired.fields,
        &pushed,
        sys_id.is_some(),
        follows_updates,
        settings,
    );
    let (fields, method, path) = match &plan {
        SyncPlan::Create(fields) => (fields, "POST", collection),
        SyncPlan::Update(fields) => (fields, "PATCH", record.clone()),
        SyncPlan::UpToDate => return Ok(planned),
    };
    // As the engine sends them: internal values first, display values in a request of
    // their own (the flag covers a whole request).
    let (internal, display) = desired.split(fields);
    if !internal.is_empty() || matches!(plan, SyncPlan::Create(_)) {
        planned.requests.push(PlannedRequest {
            method,
            path,
            body: Some(internal),
            display_values: false,
        });
    }
    if !display.is_empty() {
        planned.display_fields = display.keys().cloned().collect();
        planned.requests.push(PlannedRequest {
            method: "PATCH",
            path: format!("{record}?sysparm_input_display_value=true"),
            body: Some(display),
            display_values: true,
        });
    }
    Ok(planned)
}
