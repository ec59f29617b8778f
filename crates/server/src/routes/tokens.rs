//! Listing and revoking team tokens (creation lives with teams). Admin only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::Path;
use crate::state::AppState;

/// Active tokens with their names and teams; the tokens themselves were shown once.
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.services.teams().list_tokens(&caller).await?,
    ))
}

/// Every request looks its token up afresh, so the token fails from the next request on.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    state.services.teams().revoke_token(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
