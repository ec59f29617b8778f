//! Incidents: create, list, read with timeline and links, change, forward.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use snowbound_core::{Attributes, Incident, IncidentStatus, Severity};
use snowbound_services::incidents::IncidentQuery;
use snowbound_services::{Change, NewIncident};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::state::AppState;
use crate::views::{incident_view, IncidentView};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIncident {
    team_id: Uuid,
    title: String,
    #[serde(default)]
    description: Option<String>,
    severity: Severity,
    #[serde(default)]
    #[schema(value_type = Option<std::collections::BTreeMap<String, String>>)]
    attributes: Option<Attributes>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditIncident {
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    #[serde(default)]
    comment: Option<String>,
}

/// Actions without parameters still refuse unknown keys, so a misplaced `comment`
/// on /acknowledge is reported instead of dropped.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardBody {
    integration_id: Uuid,
}

async fn view(state: &AppState, incident: Incident) -> ApiResult<axum::Json<IncidentView>> {
    Ok(axum::Json(incident_view(state, incident).await?))
}

#[utoipa::path(post, operation_id = "incidents_create", path = "/incidents", tag = "incidents",
    description = "Opens an incident; forwarding and the team's routing rules decide its links.",
    request_body = CreateIncident,
    responses((status = 201, description = "The incident with its timeline and links", body = IncidentView)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateIncident>,
) -> ApiResult<impl IntoResponse> {
    let new = NewIncident {
        team_id: body.team_id,
        title: body.title,
        description: body.description.unwrap_or_default(),
        severity: body.severity,
        attributes: body.attributes.unwrap_or_default(),
    };
    let incident = state.incidents().create(&caller, new).await?;
    Ok((StatusCode::CREATED, view(&state, incident).await?))
}

#[utoipa::path(get, operation_id = "incidents_list", path = "/incidents", tag = "incidents",
    description = "Incidents the caller may see.",
    params(
        ("status" = Option<IncidentStatus>, Query, description = "Only this status"),
        ("severity" = Option<Severity>, Query, description = "Only this severity"),
        ("team_id" = Option<Uuid>, Query, description = "Only this team's"),
        ("limit" = Option<u32>, Query, description = "At most this many"),
    ),
    responses((status = 200, description = "The incidents (without timeline and links)", body = Vec<Incident>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    mut query: Query,
) -> ApiResult<impl IntoResponse> {
    let incidents_query = IncidentQuery {
        status: query.parse("status")?,
        severity: query.parse("severity")?,
        team_id: query.parse("team_id")?,
        limit: query.parse("limit")?,
    };
    query.finish()?;
    let incidents: Vec<Incident> = state.incidents().list(&caller, incidents_query).await?;
    Ok(axum::Json(incidents))
}

#[utoipa::path(get, operation_id = "incidents_get", path = "/incidents/{id}", tag = "incidents",
    params(("id" = Uuid, Path, description = "The incident's id")),
    responses((status = 200, description = "The incident with its timeline and links", body = IncidentView)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    let incident = state.incidents().visible(&caller, id).await?;
    view(&state, incident).await
}

async fn change(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    change: Change,
) -> ApiResult<axum::Json<IncidentView>> {
    let incident = state.incidents().change(caller, id, change).await?;
    view(state, incident).await
}

#[utoipa::path(patch, operation_id = "incidents_edit", path = "/incidents/{id}", tag = "incidents",
    description = "Changes the keys sent; title and description reach ServiceNow on create only.",
    params(("id" = Uuid, Path, description = "The incident's id")), request_body = EditIncident,
    responses((status = 200, description = "The incident", body = IncidentView)))]
pub async fn edit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<EditIncident>,
) -> ApiResult<impl IntoResponse> {
    let edit = Change::Edit {
        severity: body.severity,
        title: body.title,
        description: body.description,
    };
    change(&state, &caller, id, edit).await
}

#[utoipa::path(post, operation_id = "incidents_acknowledge", path = "/incidents/{id}/acknowledge", tag = "incidents",
    params(("id" = Uuid, Path, description = "The incident's id")), request_body(content = Option<NoBody>, description = "Empty, or `{}`"),
    responses((status = 200, description = "The incident", body = IncidentView)))]
pub async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    OptionalJson(NoBody {}): OptionalJson<NoBody>,
) -> ApiResult<impl IntoResponse> {
    change(&state, &caller, id, Change::Acknowledge).await
}

#[utoipa::path(post, operation_id = "incidents_resolve", path = "/incidents/{id}/resolve", tag = "incidents",
    params(("id" = Uuid, Path, description = "The incident's id")),
    request_body(content = Option<ResolveBody>,
        description = "Optional; `comment` becomes ServiceNow's close notes"),
    responses((status = 200, description = "The incident", body = IncidentView)))]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    OptionalJson(body): OptionalJson<ResolveBody>,
) -> ApiResult<impl IntoResponse> {
    let resolve = Change::Resolve {
        comment: body.comment,
    };
    change(&state, &caller, id, resolve).await
}

#[utoipa::path(post, operation_id = "incidents_reopen", path = "/incidents/{id}/reopen", tag = "incidents",
    params(("id" = Uuid, Path, description = "The incident's id")), request_body(content = Option<NoBody>, description = "Empty, or `{}`"),
    responses((status = 200, description = "The incident", body = IncidentView)))]
pub async fn reopen(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    OptionalJson(NoBody {}): OptionalJson<NoBody>,
) -> ApiResult<impl IntoResponse> {
    change(&state, &caller, id, Change::Reopen).await
}

#[utoipa::path(post, operation_id = "incidents_forward", path = "/incidents/{id}/forward", tag = "incidents",
    description = "Links the incident to an integration serving its team.",
    params(("id" = Uuid, Path, description = "The incident's id")), request_body = ForwardBody,
    responses((status = 200, description = "The incident", body = IncidentView)))]
pub async fn forward(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<ForwardBody>,
) -> ApiResult<impl IntoResponse> {
    let incident = state
        .incidents()
        .forward(&caller, id, body.integration_id)
        .await?;
    view(&state, incident).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    text: String,
}

#[utoipa::path(post, operation_id = "incidents_comment", path = "/incidents/{id}/comments", tag = "incidents",
    params(("id" = Uuid, Path, description = "The incident's id")), request_body = CommentBody,
    responses((status = 201, description = "The incident with the comment in its timeline", body = IncidentView)))]
pub async fn comment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<CommentBody>,
) -> ApiResult<impl IntoResponse> {
    let incident = state.incidents().comment(&caller, id, &body.text).await?;
    Ok((StatusCode::CREATED, view(&state, incident).await?))
}

#[utoipa::path(post, operation_id = "incidents_retry_link", path = "/incidents/{id}/links/{integration_id}/retry", tag = "incidents",
    description = "Syncs a parked or retrying link now.",
    params(("id" = Uuid, Path, description = "The incident's id"), ("integration_id" = Uuid, Path, description = "The linked integration's id")),
    responses((status = 200, description = "The incident", body = IncidentView)))]
pub async fn retry_link(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, integration_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<impl IntoResponse> {
    let incident = state
        .incidents()
        .retry_link(&caller, id, integration_id)
        .await?;
    view(&state, incident).await
}

#[utoipa::path(post, operation_id = "incidents_recreate_link", path = "/incidents/{id}/links/{integration_id}/recreate", tag = "incidents",
    description = "Forgets a record that no longer exists in ServiceNow and creates it again.",
    params(("id" = Uuid, Path, description = "The incident's id"), ("integration_id" = Uuid, Path, description = "The linked integration's id")),
    responses((status = 200, description = "The incident", body = IncidentView)))]
pub async fn recreate_link(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, integration_id)): Path<(Uuid, Uuid)>,
) -> ApiResult<impl IntoResponse> {
    let incident = state
        .incidents()
        .recreate_link(&caller, id, integration_id)
        .await?;
    view(&state, incident).await
}
