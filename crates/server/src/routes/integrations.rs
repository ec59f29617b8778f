//! Outbound integrations: create, read, partial update, delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde_json::Value;
use snowbound_core::{new_id, Credentials, Integration};
use snowbound_store::{IntegrationRecord, StoreError};
use uuid::Uuid;

use crate::auth::Caller;
use crate::choices::unknown_value_warnings;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::integration_input::{check, merge_patch, IntegrationInput};
use crate::state::AppState;
use crate::views::IntegrationView;

/// The integration if the caller may see it; others' integrations do not exist.
pub(crate) async fn visible(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> ApiResult<IntegrationRecord> {
    match state.store.get_integration(id).await {
        Ok(record) if caller.sees_integration(&record.integration) => Ok(record),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::not_found("integration")),
        Err(e) => Err(e.into()),
    }
}

async fn owned(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<IntegrationRecord> {
    let record = visible(state, caller, id).await?;
    if !caller.owns_integration(&record.integration) {
        return Err(ApiError::forbidden(
            "only a token of the integration's root team may change it",
        ));
    }
    Ok(record)
}

/// The answer to a create or PATCH: the stored integration plus a warning for each
/// mapped value ServiceNow's choice lists do not know (none when they cannot be read).
async fn with_warnings(state: &AppState, record: IntegrationRecord) -> IntegrationView {
    let warnings = unknown_value_warnings(state, &record.integration).await;
    let mut view = IntegrationView::new(record);
    view.warnings = Some(warnings);
    view
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<IntegrationInput>,
) -> ApiResult<impl IntoResponse> {
    let record = create_integration(&state, &caller, input).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(with_warnings(&state, record).await),
    ))
}

/// Validates and stores a new integration; the API and the web UI both create through here.
pub(crate) async fn create_integration(
    state: &AppState,
    caller: &Caller,
    input: IntegrationInput,
) -> ApiResult<IntegrationRecord> {
    let checked = check(state, caller, input, None).await?;
    let password = checked.password.ok_or_else(ApiError::internal)?;
    let now = Utc::now();
    let integration = Integration {
        id: new_id(),
        display_name: checked.display_name,
        root_team_id: checked.root_team_id,
        team_ids: checked.team_ids,
        forwarding: checked.forwarding,
        servicenow: checked.servicenow,
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .create_integration(&integration, &Credentials::basic(password))
        .await?;
    Ok(state.store.get_integration(integration.id).await?)
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    let views: Vec<IntegrationView> = state
        .store
        .list_integrations()
        .await?
        .into_iter()
        .filter(|r| caller.sees_integration(&r.integration))
        .map(IntegrationView::new)
        .collect();
    Ok(axum::Json(views))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    let record = visible(&state, &caller, id).await?;
    Ok(axum::Json(IntegrationView::new(record)))
}

pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(patch): Json<Value>,
) -> ApiResult<impl IntoResponse> {
    let record = update_integration(&state, &caller, id, patch).await?;
    Ok(axum::Json(with_warnings(&state, record).await))
}

/// Merges a JSON merge patch into the stored integration, validates and stores it; the
/// API's PATCH and the web UI's forms both change integrations through here.
pub(crate) async fn update_integration(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    patch: Value,
) -> ApiResult<IntegrationRecord> {
    let current = owned(state, caller, id).await?.integration;
    let input = merge_patch(&current, patch)?;
    let checked = check(state, caller, input, Some(&current)).await?;
    let integration = Integration {
        id: current.id,
        display_name: checked.display_name,
        root_team_id: checked.root_team_id,
        team_ids: checked.team_ids,
        forwarding: checked.forwarding,
        servicenow: checked.servicenow,
        created_at: current.created_at,
        updated_at: Utc::now(),
    };
    state
        .store
        .update_integration(
            &integration,
            &Credentials {
                password: checked.password,
                ..Credentials::default()
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("integration"),
            other => other.into(),
        })?;
    // New settings un-park and bump every link: the engine re-applies them now.
    state.waker.wake();
    state.choice_cache.invalidate(id);
    Ok(state.store.get_integration(id).await?)
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    owned(&state, &caller, id).await?;
    state.choice_cache.invalidate(id);
    match state.store.delete_integration(id).await {
        Ok(()) | Err(StoreError::NotFound) => Ok(StatusCode::NO_CONTENT),
        Err(e) => Err(e.into()),
    }
}
