//! Incidents: create, list, read with timeline and links, change, forward.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use snowbound_core::{Attributes, Incident, Severity};
use snowbound_services::incidents::IncidentQuery;
use snowbound_services::{Change, NewIncident};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::state::AppState;
use crate::views::{incident_view, IncidentView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIncident {
    team_id: Uuid,
    title: String,
    #[serde(default)]
    description: Option<String>,
    severity: Severity,
    #[serde(default)]
    attributes: Option<Attributes>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditIncident {
    #[serde(default)]
    severity: Option<Severity>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    #[serde(default)]
    comment: Option<String>,
}

/// Actions without parameters still refuse unknown keys, so a misplaced `comment`
/// on /acknowledge is reported instead of dropped.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardBody {
    integration_id: Uuid,
}

async fn view(state: &AppState, incident: Incident) -> ApiResult<axum::Json<IncidentView>> {
    Ok(axum::Json(incident_view(state, incident).await?))
}

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

pub async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    OptionalJson(NoBody {}): OptionalJson<NoBody>,
) -> ApiResult<impl IntoResponse> {
    change(&state, &caller, id, Change::Acknowledge).await
}

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

pub async fn reopen(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    OptionalJson(NoBody {}): OptionalJson<NoBody>,
) -> ApiResult<impl IntoResponse> {
    change(&state, &caller, id, Change::Reopen).await
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    text: String,
}

pub async fn comment(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<CommentBody>,
) -> ApiResult<impl IntoResponse> {
    let incident = state.incidents().comment(&caller, id, &body.text).await?;
    Ok((StatusCode::CREATED, view(&state, incident).await?))
}

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
