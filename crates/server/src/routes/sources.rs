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
use snowbound_core::source::{Source, SourceKind};
use snowbound_core::Severity;
use snowbound_services::sources::{NewSource, SourceChange};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::state::AppState;

#[derive(Deserialize)]
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchSource {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    severity_map: Option<BTreeMap<String, Severity>>,
}

#[derive(Serialize)]
pub(crate) struct SourceView {
    pub id: Uuid,
    pub team_id: Uuid,
    #[serde(rename = "type")]
    pub kind: SourceKind,
    pub name: String,
    pub severity_map: BTreeMap<String, Severity>,
    /// The only credential a sender needs.
    pub ingest_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servicenow: Option<ServiceNowSourceSettings>,
    /// What the ServiceNow admin pastes, for a `servicenow` source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business_rule: Option<BusinessRule>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub(crate) async fn view(state: &AppState, source: Source) -> ApiResult<SourceView> {
    let secret = state.services.sources().secret(&source).await?;
    let ingest_url = format!("{}/ingest/{}", state.public_url(), secret.expose_secret());
    let business_rule = match &source.servicenow {
        Some(settings) => {
            let integration = state.store.get_integration(settings.integration_id).await?;
            Some(business_rule(
                &source.name,
                &integration.integration.servicenow,
                settings.open_filter(),
                &ingest_url,
            ))
        }
        None => None,
    };
    Ok(SourceView {
        ingest_url,
        servicenow: source.servicenow,
        business_rule,
        id: source.id,
        team_id: source.team_id,
        kind: source.kind,
        name: source.name,
        severity_map: source.severity_map,
        created_at: source.created_at,
        updated_at: source.updated_at,
    })
}

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
    };
    let source = state.services.sources().create(&caller, new).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&state, source).await?)))
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    let sources = state.services.sources().list(&caller, None).await?;
    let mut views = Vec::with_capacity(sources.len());
    for source in sources {
        views.push(view(&state, source).await?);
    }
    Ok(axum::Json(views))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    let source = state.services.sources().visible(&caller, id).await?;
    Ok(axum::Json(view(&state, source).await?))
}

pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<PatchSource>,
) -> ApiResult<impl IntoResponse> {
    let change = SourceChange {
        name: body.name,
        severity_map: body.severity_map,
    };
    let source = state.services.sources().update(&caller, id, change).await?;
    Ok(axum::Json(view(&state, source).await?))
}

/// A new secret; the old URL stops working when this answers.
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    let source = state.services.sources().rotate(&caller, id).await?;
    Ok(axum::Json(view(&state, source).await?))
}

/// Incidents the source opened stay; only the way in closes.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    state.services.sources().delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
