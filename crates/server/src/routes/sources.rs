//! Alert sources: create, list, read (with the ingest URL), rename or re-map
//! severities, rotate the secret, delete; a `json` source's kept payloads and the
//! preview of a mapping on them. The rules are the source service's.

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
use snowbound_core::ingest::grafana::GrafanaSettings;
use snowbound_core::ingest::json_mapping::{JsonMapping, Preview};
use snowbound_core::source::{Source, SourceKind};
use snowbound_core::Severity;
use snowbound_services::sources::{
    email_address, GrafanaInput, NewSource, PayloadView, PreviewPayload, SourceChange,
};
use snowbound_store::PollState;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
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
    grafana: Option<GrafanaInput>,
    #[serde(default)]
    json: Option<JsonMapping>,
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
    /// `hmac_secret` absent keeps the stored secret, `""` removes it.
    #[serde(default)]
    grafana: Option<GrafanaInput>,
    /// A whole mapping, complete; it replaces the stored one.
    #[serde(default)]
    json: Option<JsonMapping>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// May be incomplete: the preview lists what is missing.
    mapping: JsonMapping,
    /// A payload to try; else the kept one at `payload_index` (default 0, the newest).
    #[serde(default)]
    payload: Option<serde_json::Value>,
    #[serde(default)]
    payload_index: Option<usize>,
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
    /// A `grafana` source's signature settings (never the secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grafana: Option<GrafanaView>,
    /// A `json` source's mapping; `null` until one is saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<Option<JsonMapping>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct GrafanaView {
    /// Write-only: only whether one is set.
    pub hmac_secret: SecretSet,
    /// The header the signature is read from (Grafana's default unless set).
    pub hmac_header: String,
    pub timestamp_header: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SecretSet {
    pub set: bool,
}

impl From<&GrafanaSettings> for GrafanaView {
    fn from(g: &GrafanaSettings) -> Self {
        GrafanaView {
            hmac_secret: SecretSet {
                set: g.hmac_secret_set,
            },
            hmac_header: g.signature_header().to_owned(),
            timestamp_header: g.timestamp_header.clone(),
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PayloadAnswer {
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
    /// As received (as text), cut when `truncated`.
    pub body: String,
    pub truncated: bool,
    /// What the source's current mapping makes of it.
    pub preview: Preview,
}

impl From<PayloadView> for PayloadAnswer {
    fn from(v: PayloadView) -> Self {
        PayloadAnswer {
            id: v.payload.id,
            received_at: v.payload.received_at,
            body: v.payload.body,
            truncated: v.payload.truncated,
            preview: v.preview,
        }
    }
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
    let grafana = source.grafana.as_ref().map(GrafanaView::from);
    let json = (source.kind == SourceKind::Json).then_some(source.json);
    Ok(SourceView {
        grafana,
        json,
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
        grafana: body.grafana,
        json: body.json,
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
        grafana: body.grafana,
        json: body.json,
    };
    let source = state.services.sources().update(&caller, id, change).await?;
    Ok(axum::Json(view(&state, source).await?))
}

#[utoipa::path(get, operation_id = "sources_payloads", path = "/sources/{id}/payloads", tag = "sources",
    description = "A `json` source's last 20 payloads, newest first, each with what the current mapping makes of it.",
    params(("id" = Uuid, Path, description = "The source's id")),
    responses((status = 200, description = "The kept payloads", body = Vec<PayloadAnswer>)))]
/// A `json` source's kept payloads, newest first, each with what the current mapping
/// makes of it.
pub async fn payloads(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    let payloads = state.services.sources().payloads(&caller, id).await?;
    let answers: Vec<PayloadAnswer> = payloads.into_iter().map(PayloadAnswer::from).collect();
    Ok(axum::Json(answers))
}

#[utoipa::path(post, operation_id = "sources_mapping_preview", path = "/sources/{id}/mapping-preview", tag = "sources",
    description = "What a payload (given, or a kept one) would become under a mapping that need not be complete or saved.",
    params(("id" = Uuid, Path, description = "The source's id")),
    request_body = PreviewRequest,
    responses((status = 200, description = "The incident it would become, or the failing path and what is missing", body = Preview)))]
/// What a payload would become under a mapping that need not be complete or saved.
pub async fn mapping_preview(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<PreviewRequest>,
) -> ApiResult<impl IntoResponse> {
    let payload = match (body.payload, body.payload_index) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_field(
                "payload_index",
                "give `payload` or `payload_index`, not both",
            ))
        }
        (Some(payload), None) => PreviewPayload::Given(payload.to_string().into_bytes()),
        (None, index) => PreviewPayload::Kept(index.unwrap_or(0)),
    };
    let preview = state
        .services
        .sources()
        .preview(&caller, id, &body.mapping, payload)
        .await?;
    Ok(axum::Json(preview))
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
