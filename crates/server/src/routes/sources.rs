//! Alert sources: create, list, read (with the ingest URL), rename or re-map
//! severities, rotate the secret, delete.
//!
//! The secret is kept sealed with the instance key (like integration passwords) besides
//! its hash, so the ingest URL can be shown again to whoever may see the source: it is
//! configuration people copy into Alertmanager, and a URL shown once is a URL that ends
//! up in a wiki. Rotation is the answer to a leak.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use snowbound_core::source::{Source, SourceKind};
use snowbound_core::validate::{check_text, limits};
use snowbound_core::{new_id, Severity};
use snowbound_store::StoreError;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{check_field, ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::state::AppState;

const NAME_MAX_CHARS: usize = limits::NAME;
/// Prefix of ingest secrets, so a leaked URL is recognisable in logs and scanners.
const SECRET_PREFIX: &str = "sbi_";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    pub team_id: Uuid,
    #[serde(rename = "type")]
    pub kind: SourceKind,
    pub name: String,
    #[serde(default)]
    pub severity_map: BTreeMap<String, Severity>,
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn ingest_url(state: &AppState, secret: &SecretString) -> String {
    format!("{}/ingest/{}", state.public_url(), secret.expose_secret())
}

pub(crate) async fn view(state: &AppState, source: Source) -> ApiResult<SourceView> {
    let secret = state.store.source_secret(source.id).await?;
    Ok(SourceView {
        ingest_url: ingest_url(state, &secret),
        id: source.id,
        team_id: source.team_id,
        kind: source.kind,
        name: source.name,
        severity_map: source.severity_map,
        created_at: source.created_at,
        updated_at: source.updated_at,
    })
}

/// 256 random bits: guessing one is hopeless, so the URL alone may authenticate.
fn generate_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    SecretString::from(format!("{SECRET_PREFIX}{}", hex::encode(bytes)))
}

fn checked_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid_field("name", "is required"));
    }
    check_field("name", name, NAME_MAX_CHARS)?;
    Ok(name.to_owned())
}

/// Keys are the sender's words, matched case-insensitively.
fn checked_map(map: BTreeMap<String, Severity>) -> ApiResult<BTreeMap<String, Severity>> {
    let mut checked = BTreeMap::new();
    for (word, severity) in map {
        let key = word.trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(ApiError::invalid_field(
                "severity_map",
                "keys must not be empty",
            ));
        }
        // Not named in the path: the key may be the very text that is wrong.
        check_text(&key, limits::SEVERITY_WORD).map_err(|message| {
            ApiError::invalid_field("severity_map", format!("a key {message}"))
        })?;
        checked.insert(key, severity);
    }
    Ok(checked)
}

/// The source if the caller may see it; other teams' sources do not exist.
async fn visible(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<Source> {
    match state.store.get_source(id).await {
        Ok(source) if caller.sees_team(source.team_id) => Ok(source),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::not_found("source")),
        Err(e) => Err(e.into()),
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateSource>,
) -> ApiResult<impl IntoResponse> {
    let view = create_source(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// Creates a source; the API and the web UI's Sources page both call this.
pub(crate) async fn create_source(
    state: &AppState,
    caller: &Caller,
    body: CreateSource,
) -> ApiResult<SourceView> {
    let name = checked_name(&body.name)?;
    let severity_map = checked_map(body.severity_map)?;
    if !caller.sees_team(body.team_id) {
        return Err(ApiError::invalid_field("team_id", "no such team"));
    }
    match state.store.get_team(body.team_id).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => {
            return Err(ApiError::invalid_field("team_id", "no such team"))
        }
        Err(e) => return Err(e.into()),
    }
    let now = Utc::now();
    let source = Source {
        id: new_id(),
        team_id: body.team_id,
        kind: body.kind,
        name,
        severity_map,
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .create_source(&source, &generate_secret())
        .await?;
    view(state, source).await
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    let filter = caller.team_filter();
    let sources = state.store.list_sources(filter.as_deref()).await?;
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
    let source = visible(&state, &caller, id).await?;
    Ok(axum::Json(view(&state, source).await?))
}

pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<PatchSource>,
) -> ApiResult<impl IntoResponse> {
    let mut source = visible(&state, &caller, id).await?;
    if let Some(name) = body.name {
        source.name = checked_name(&name)?;
    }
    if let Some(map) = body.severity_map {
        source.severity_map = checked_map(map)?;
    }
    source.updated_at = Utc::now();
    state.store.update_source(&source).await.map_err(gone)?;
    Ok(axum::Json(view(&state, source).await?))
}

/// A new secret; the old URL stops working when this answers.
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(rotate_source(&state, &caller, id).await?))
}

pub(crate) async fn rotate_source(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> ApiResult<SourceView> {
    visible(state, caller, id).await?;
    state
        .store
        .rotate_source_secret(id, &generate_secret())
        .await
        .map_err(gone)?;
    let source = state.store.get_source(id).await.map_err(gone)?;
    view(state, source).await
}

/// Incidents the source opened stay; only the way in closes.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    delete_source(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn delete_source(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<()> {
    visible(state, caller, id).await?;
    match state.store.delete_source(id).await {
        Ok(()) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn gone(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("source"),
        other => other.into(),
    }
}
