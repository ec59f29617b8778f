//! The web UI's accounts as an administrator scripts them: who is an admin, who sees
//! which team, and ending login waits. Admin only; creating users and passwords stay in
//! the UI, where a person types them.

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Serialize;
use snowbound_services::accounts::AccessChange;
use snowbound_store::User;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

#[utoipa::path(get, operation_id = "users_list", path = "/users", tag = "users",
    description = "Admin only. The web UI's accounts, without their password hashes.",
    responses((status = 200, description = "Every user", body = Vec<User>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    Ok(axum::Json(state.services.accounts().list().await?))
}

#[utoipa::path(patch, operation_id = "users_update", path = "/users/{id}", tag = "users",
    description = "Admin only. Changes a user's admin flag and teams; what the body leaves out stays.",
    params(("id" = Uuid, Path, description = "The user's id")),
    request_body = AccessChange,
    responses((status = 200, description = "The user as it is now", body = User)))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(change): Json<AccessChange>,
) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    let user = state
        .services
        .accounts()
        .update_access(&caller.actor, None, id, change)
        .await?;
    Ok(axum::Json(user))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Cleared {
    cleared: u64,
}

#[utoipa::path(delete, operation_id = "login_lockouts_reset", path = "/login-lockouts", tag = "users",
    description = "Admin only. Ends the login waits of one account (`email`) or of every account and address.",
    params(("email" = Option<String>, Query, description = "Only this account's wait")),
    responses((status = 200, description = "How many counts were forgotten", body = Cleared)))]
/// Ends the login waits of one account (`?email=`) or of every account and address.
pub async fn reset_lockouts(
    State(state): State<AppState>,
    caller: Caller,
    mut query: Query,
) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    let email = query.take("email");
    query.finish()?;
    let cleared = state
        .services
        .accounts()
        .reset_login_limits(email.as_deref())
        .await?;
    Ok(axum::Json(Cleared { cleared }))
}
