//! Alert sources: create, list, read (with the ingest URL), rename or re-map
//! severities, rotate the secret, delete. The rules are the source service's.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use snowbound_core::inbound::business_rule::{business_rule, BusinessRule};
use snowbound_core::inbound::ServiceNowSourceSettings;
use snowbound_core::ingest::email::EmailSettings;
use snowbound_core::source::{Source, SourceKind};
use snowbound_core::Severity;
use snowbound_services::sources::{email_address, NewSource, SourceChange};
use snowbound_store::PollState;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    team_id: Uuid,
    #[serde(rename = "type")]
    kind: SourceKind,
    name: String,
    #[serde(default)]
    severity_map: BTreeMap<String, Severity>,
    #[serde(default)]
    servicenow: Option<ServiceNowSourceSettings>,
    #[serde(default)]
    email: Option<EmailSettings>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSource {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    severity_map: Option<BTreeMap<String, Severity>>,
    #[serde(default)]
    email: Option<EmailSettings>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SourceView {
    pub id: Uuid,
    pub team_id: Uuid,
    #[serde(rename = "type")]
    pub kind: SourceKind,
    pub name: String,
    pub severity_map: BTreeMap<String, Severity>,
    /// The only credential a sender needs.
    pub ingest_url: String,
    /// Where an `email` source's mail goes (`<secret>@<SNOWBOUND_SMTP_DOMAIN>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<EmailSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servicenow: Option<ServiceNowSourceSettings>,
    /// What the ServiceNow admin pastes, for a `servicenow` source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_rule: Option<BusinessRule>,
    /// How polling of a `servicenow` source goes; `null` when it does not poll
    /// (delivery `push`, or another kind of source).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PollView>)]
    pub poll: Option<Option<PollView>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PollView {
    pub last_poll_at: Option<DateTime<Utc>>,
    /// Records the last poll read.
    pub last_records: Option<i64>,
    pub last_error: Option<String>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Records changed after this `sys_updated_on` (less the overlap) are read next.
    pub watermark: Option<DateTime<Utc>>,
    pub next_poll_at: DateTime<Utc>,
}

impl From<PollState> for PollView {
    fn from(s: PollState) -> Self {
        PollView {
            last_poll_at: s.last_poll_at,
            last_records: s.last_records,
            last_error: s.last_error,
            last_success_at: s.last_success_at,
            watermark: s.watermark,
            next_poll_at: s.next_poll_at,
        }
    }
}

pub(crate) async fn view(state: &AppState, source: Source) -> ApiResult<SourceView> {
    let secret = state.services.sources().secret(&source).await?;
    let ingest_url = format!("{}/ingest/{}", state.public_url(), secret.expose_secret());
    let email_address =
        (source.kind == SourceKind::Email).then(|| email_address(&secret, state.smtp_domain()));
    let (business_rule, poll) = match &source.servicenow {
        Some(settings) => {
            let integration = state.store.get_integration(settings.integration_id).await?;
            let rule = business_rule(
                &source.name,
                &integration.integration.servicenow,
                settings.open_filter(),
                &ingest_url,
            );
            let poll = state
                .store
                .poll_state(source.id)
                .await?
                .filter(|p| p.interval_ms.is_some() && settings.delivery.polls())
                .map(PollView::from);
            (Some(rule), Some(poll))
        }
        None => (None, None),
    };
    Ok(SourceView {
        ingest_url,
        email_address,
        email: source.email,
        servicenow: source.servicenow,
        business_rule,
        poll,
        id: source.id,
        team_id: source.team_id,
        kind: source.kind,
        name: source.name,
        severity_map: source.severity_map,
        created_at: source.created_at,
        updated_at: source.updated_at,
    })
}

#[utoipa::path(post, operation_id = "sources_create", path = "/sources", tag = "sources",
    description = "A way in for alerts (`webhook`, `alertmanager`) or for ServiceNow's changes \
        (`servicenow`, which needs `servicenow` settings).",
    request_body = CreateSource,
    responses((status = 201, description = "The source with its ingest URL", body = SourceView)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateSource>,
) -> ApiResult<impl IntoResponse> {
    let new = NewSource {
        team_id: body.team_id,
        kind: body.kind,
        name: body.name,
        severity_map: body.severity_map,
        servicenow: body.servicenow,
        email: body.email,
    };
    let source = state.services.sources().create(&caller, new).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&state, source).await?)))
}

#[utoipa::path(get, operation_id = "sources_list", path = "/sources", tag = "sources",
    responses((status = 200, description = "The sources of the caller's teams", body = Vec<SourceView>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    let sources = state.services.sources().list(&caller, None).await?;
    let mut views = Vec::with_capacity(sources.len());
    for source in sources {
        views.push(view(&state, source).await?);
    }
    Ok(axum::Json(views))
}

#[utoipa::path(get, operation_id = "sources_get", path = "/sources/{id}", tag = "sources",
    params(("id" = Uuid, Path, description = "The source's id")),
    responses((status = 200, description = "The source with its ingest URL", body = SourceView)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    let source = state.services.sources().visible(&caller, id).await?;
    Ok(axum::Json(view(&state, source).await?))
}

#[utoipa::path(patch, operation_id = "sources_patch", path = "/sources/{id}", tag = "sources",
    params(("id" = Uuid, Path, description = "The source's id")), request_body = PatchSource,
    responses((status = 200, description = "The source", body = SourceView)))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<PatchSource>,
) -> ApiResult<impl IntoResponse> {
    let change = SourceChange {
        name: body.name,
        severity_map: body.severity_map,
        email: body.email,
    };
    let source = state.services.sources().update(&caller, id, change).await?;
    Ok(axum::Json(view(&state, source).await?))
}

#[utoipa::path(post, operation_id = "sources_rotate", path = "/sources/{id}/rotate", tag = "sources",
    params(("id" = Uuid, Path, description = "The source's id")),
    responses((status = 200, description = "The source with its new ingest URL", body = SourceView)))]
/// A new secret; the old URL stops working when this answers.
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    let source = state.services.sources().rotate(&caller, id).await?;
    Ok(axum::Json(view(&state, source).await?))
}

#[utoipa::path(delete, operation_id = "sources_delete", path = "/sources/{id}", tag = "sources",
    params(("id" = Uuid, Path, description = "The source's id")),
    responses((status = 204, description = "Deleted")))]
/// Incidents the source opened stay; only the way in closes.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    state.services.sources().delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
