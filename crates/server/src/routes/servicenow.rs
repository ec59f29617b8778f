//! Setting an integration up: test connection, choice lists, a preview of the next sync
//! and the API call log.

use axum::extract::State;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use snowbound_core::validate::is_servicenow_name;
use snowbound_core::Integration;
use snowbound_servicenow::{speaks_table_api, Check, Choice, TestReport};
use snowbound_store::{ApiCallFilter, ApiCallRecord};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::choices::load;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::servicenow::{connection, record_calls};
use crate::state::AppState;

const DEFAULT_CALLS: u32 = 100;
const MAX_CALLS: u32 = 1000;

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = TestConnectionBody)]
pub struct NoBody {}

#[utoipa::path(post, operation_id = "integrations_test_connection", path = "/integrations/{id}/test-connection", tag = "integrations",
    description = "Tries the stored settings against ServiceNow and says, check by check, what works \
        and what to fix. Logged in the integration's API call log.",
    params(("id" = Uuid, Path, description = "The integration's id")), request_body(content = Option<NoBody>, description = "Empty, or `{}`"),
    responses((status = 200, description = "The report (`ok` false when a check failed)", body = TestReport)))]
pub async fn test_connection(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    OptionalJson(NoBody {}): OptionalJson<NoBody>,
) -> ApiResult<impl IntoResponse> {
    let integration = state.integrations().visible(&caller, id).await?.integration;
    Ok(axum::Json(run_test_connection(&state, &integration).await))
}

/// Test Connection with the stored settings, logged in the integration's API call log;
/// the API and the settings page both run it through here.
pub(crate) async fn run_test_connection(state: &AppState, integration: &Integration) -> TestReport {
    match connection(state.store.as_ref(), integration).await {
        Ok(conn) => {
            let (report, calls) = state.servicenow.test_connection(&conn).await;
            record_calls(state, integration.id, None, calls).await;
            report
        }
        Err(problem) => TestReport {
            ok: false,
            checks: vec![Check {
                name: "Settings usable".into(),
                ok: false,
                detail: problem,
            }],
            warnings: Vec::new(),
        },
    }
}

#[utoipa::path(get, operation_id = "integrations_choices", path = "/integrations/{id}/choices", tag = "integrations",
    description = "A field's ServiceNow choice list on the integration's table (cached).",
    params(("id" = Uuid, Path, description = "The integration's id"),
        ("field" = String, Query, description = "A ServiceNow field name (`urgency`, `state`…)"),
        ("refresh" = Option<bool>, Query, description = "Read ServiceNow again instead of the cache"),
    ),
    responses((status = 200, description = "The choices, or none with a warning", body = Choices)))]
pub async fn choices(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    mut query: Query,
) -> ApiResult<impl IntoResponse> {
    let field = query
        .take("field")
        .ok_or_else(|| ApiError::invalid_field("field", "is required"))?;
    let refresh = query.parse::<bool>("refresh")?.unwrap_or(false);
    query.finish()?;
    if !is_servicenow_name(&field) {
        return Err(ApiError::invalid_field(
            "field",
            format!("`{field}` is not a ServiceNow name (lowercase letters, digits and _)"),
        ));
    }
    let integration = state.integrations().visible(&caller, id).await?.integration;
    let loaded = load(&state, &integration, &field, refresh).await;
    Ok(axum::Json(Choices {
        field,
        choices: loaded.choices,
        warning: loaded.warning,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Choices {
    field: String,
    /// Active choices in ServiceNow's order; empty when they cannot be read.
    choices: Vec<Choice>,
    /// Why the list is empty (the instance unreachable, no read right on sys_choice…).
    #[serde(skip_serializing_if = "Option::is_none")]
    warning: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    incident_id: Uuid,
}

/// The requests the next reconcile would send, computed by the engine's own functions
/// (field mappings and routing rules' `set_fields` included) from what the link last
/// pushed. A never-forwarded incident shows its create.
#[utoipa::path(post, operation_id = "integrations_preview", path = "/integrations/{id}/preview", tag = "integrations",
    description = "The requests the next sync of an incident would send to this integration.",
    params(("id" = Uuid, Path, description = "The integration's id")), request_body = PreviewBody,
    responses((status = 200, description = "The planned requests", body = crate::preview::Planned)))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<PreviewBody>,
) -> ApiResult<impl IntoResponse> {
    let integration = state.integrations().visible(&caller, id).await?.integration;
    let incident = state
        .incidents()
        .visible(&caller, body.incident_id)
        .await
        .map_err(|_| ApiError::invalid_field("incident_id", "no such incident"))?;
    Ok(axum::Json(
        crate::preview::next_sync(&state, &integration, &incident).await?,
    ))
}

fn call_filter(query: &mut Query) -> ApiResult<ApiCallFilter> {
    let status_class: Option<u16> = query.parse("status_class")?;
    if let Some(class) = status_class.filter(|c| ![0, 1, 2, 3, 4, 5].contains(c)) {
        return Err(ApiError::invalid_field(
            "status_class",
            format!("`{class}` is not one of 2, 4, 5 (or 0 for calls that got no answer)"),
        ));
    }
    let limit: Option<u32> = query.parse("limit")?;
    Ok(ApiCallFilter {
        status_class,
        limit: Some(limit.unwrap_or(DEFAULT_CALLS).clamp(1, MAX_CALLS)),
        ..ApiCallFilter::default()
    })
}

#[utoipa::path(get, operation_id = "integrations_api_calls", path = "/integrations/{id}/api-calls", tag = "integrations",
    description = "The integration's ServiceNow API call log, newest first, as the caller may read it.",
    params(("id" = Uuid, Path, description = "The integration's id"),
        ("status_class" = Option<u16>, Query, description = "2, 4 or 5 for 2xx/4xx/5xx; 0 for calls that got no answer"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100, at most 1000)"),
        ("incident_id" = Option<Uuid>, Query, description = "Only calls about this incident"),
    ),
    responses((status = 200, description = "The calls", body = Vec<ApiCallRecord>)))]
pub async fn integration_api_calls(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    mut query: Query,
) -> ApiResult<impl IntoResponse> {
    let mut filter = call_filter(&mut query)?;
    filter.incident_id = query.parse("incident_id")?;
    query.finish()?;
    let integration = state.integrations().visible(&caller, id).await?.integration;
    filter.integration_id = Some(id);
    Ok(axum::Json(
        calls_seen_by(&state, &caller, &integration, filter).await?,
    ))
}

/// An integration's API call log as `caller` may read it, newest first. A team the
/// integration is shared with must not read another team's incidents through it: a
/// non-admin gets only the calls of incidents it can open, plus the calls about no
/// incident (Test Connection, choice lists) when its team owns the integration. The
/// API and the settings page both read the log through here.
pub(crate) async fn calls_seen_by(
    state: &AppState,
    caller: &Caller,
    integration: &Integration,
    mut filter: ApiCallFilter,
) -> ApiResult<Vec<ApiCallRecord>> {
    filter.visible_team_ids = caller.team_filter();
    filter.include_without_incident = caller.owns_integration(integration);
    let mut calls = state.store.list_api_calls(&filter).await?;
    // The store answers newest first; a stable sort keeps its order within a millisecond.
    calls.sort_by_key(|call| std::cmp::Reverse(call.at));
    Ok(calls.into_iter().map(|c| readable_by(caller, c)).collect())
}

/// A body that is not ServiceNow's JSON came from whatever answered at the instance
/// address (a proxy page or, before the URL rules, any service Snowbound could reach):
/// only an admin sees it.
fn readable_by(caller: &Caller, mut call: ApiCallRecord) -> ApiCallRecord {
    let foreign = call
        .response_body
        .as_deref()
        .is_some_and(|body| !body.is_empty() && !speaks_table_api(body.as_bytes()));
    if foreign && !caller.is_admin() {
        call.response_body = None;
    }
    call
}

#[utoipa::path(get, operation_id = "incidents_api_calls", path = "/incidents/{id}/api-calls", tag = "incidents",
    description = "The ServiceNow calls made for an incident, newest first.",
    params(("id" = Uuid, Path, description = "The incident's id"),
        ("status_class" = Option<u16>, Query, description = "2, 4 or 5 for 2xx/4xx/5xx; 0 for calls that got no answer"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100, at most 1000)"),
        ("integration_id" = Option<Uuid>, Query, description = "Only calls to this integration"),
    ),
    responses((status = 200, description = "The calls", body = Vec<ApiCallRecord>)))]
pub async fn incident_api_calls(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    mut query: Query,
) -> ApiResult<impl IntoResponse> {
    let mut filter = call_filter(&mut query)?;
    filter.integration_id = query.parse("integration_id")?;
    query.finish()?;
    state.incidents().visible(&caller, id).await?;
    filter.incident_id = Some(id);
    let mut calls = state.store.list_api_calls(&filter).await?;
    // The store answers newest first; a stable sort keeps its order within a millisecond.
    calls.sort_by_key(|call| std::cmp::Reverse(call.at));
    let calls: Vec<ApiCallRecord> = calls.into_iter().map(|c| readable_by(&caller, c)).collect();
    Ok(axum::Json(calls))
}
