//! Listing and revoking team tokens (creation lives with teams). Admin only.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use snowbound_store::ApiToken;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::Path;
use crate::state::AppState;

#[utoipa::path(get, operation_id = "tokens_list", path = "/tokens", tag = "teams", description = "Admin only.",
    responses((status = 200, description = "Active tokens, without the tokens themselves",
        body = Vec<ApiToken>)))]
/// Active tokens with their names and teams; the tokens themselves were shown once.
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.services.teams().list_tokens(&caller).await?,
    ))
}

#[utoipa::path(delete, operation_id = "tokens_revoke", path = "/tokens/{id}", tag = "teams", description = "Admin only.",
    params(("id" = Uuid, Path, description = "The token's id")),
    responses((status = 204, description = "Revoked: the token fails from the next request on")))]
/// Every request looks its token up afresh, so the token fails from the next request on.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    state.services.teams().revoke_token(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
