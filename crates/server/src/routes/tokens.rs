//! Listing and revoking team tokens (creation lives with teams). Admin only: a team
//! token revoking others' tokens of a shared team would be a way to lock people out.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use snowbound_store::StoreError;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::state::AppState;

/// Active tokens with their names and teams; the tokens themselves were shown once.
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    Ok(axum::Json(state.store.list_tokens().await?))
}

/// Every request looks its token up afresh, so the token fails from the next request on.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    match state.store.revoke_token(id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::NotFound) => Err(ApiError::not_found("token")),
        Err(e) => Err(e.into()),
    }
}
