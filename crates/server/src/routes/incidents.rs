//! Incidents: create, list, read with timeline and links, change, forward.

use axum::extract::{OriginalUri, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
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
    description = "Incidents the caller may see, newest first (ties by id), a page at a time: \
        when more follow, the `Link` header (`rel=\"next\"`) and `X-Next-Cursor` give the \
        next page.",
    params(
        ("status" = Option<IncidentStatus>, Query, description = "Only this status"),
        ("severity" = Option<Severity>, Query, description = "Only this severity"),
        ("team_id" = Option<Uuid>, Query, description = "Only this team's"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 200, at most 1000)"),
        ("q" = Option<String>, Query, description = "Search terms separated by spaces, all of which \
            must match: `key=value` or `key:value` is an attribute holding exactly that value, \
            any other term a case-insensitive substring of the title"),
        ("before" = Option<String>, Query, description = "An opaque cursor from `X-Next-Cursor`: \
            the page after the one that answered it"),
    ),
    responses((status = 200, description = "The incidents (without timeline and links)", body = Vec<Incident>,
        headers(
            ("Link" = String, description = "`<url>; rel=\"next\"` when more incidents follow"),
            ("X-Next-Cursor" = String, description = "The `before` of the next page, when more follow"),
        ))))]
pub async fn list(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    caller: Caller,
    mut query: Query,
) -> ApiResult<impl IntoResponse> {
    let kept = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            ["status", "severity", "team_id", "limit", "q"]
                .into_iter()
                .filter_map(|name| query.get(name).map(|value| (name, value))),
        )
        .finish();
    let incidents_query = IncidentQuery {
        status: query.parse("status")?,
        severity: query.parse("severity")?,
        team_id: query.parse("team_id")?,
        limit: query.parse("limit")?,
        q: query.take("q"),
        before: query.take("before"),
    };
    query.finish()?;
    let page = state.incidents().list(&caller, incidents_query).await?;
    let mut headers = HeaderMap::new();
    if let Some(next) = &page.next {
        let separator = if kept.is_empty() { "" } else { "&" };
        let link = format!(
            "<{}?{kept}{separator}before={next}>; rel=\"next\"",
            uri.path()
        );
        // Both are ASCII: the path came as a valid URI, the rest is form-encoded or base64url.
        if let (Ok(link), Ok(cursor)) = (HeaderValue::from_str(&link), HeaderValue::from_str(next))
        {
            headers.insert(header::LINK, link);
            headers.insert(NEXT_CURSOR.clone(), cursor);
        }
    }
    Ok((headers, axum::Json(page.incidents)))
}

static NEXT_CURSOR: HeaderName = HeaderName::from_static("x-next-cursor");

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
