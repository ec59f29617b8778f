//! The web UI's accounts as an administrator scripts them: who is an admin, who sees
//! which team, and ending login waits. Admin only; creating users and passwords stay in
//! the UI, where a person types them.

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Serialize;
use snowbound_services::accounts::AccessChange;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    Ok(axum::Json(state.services.accounts().list().await?))
}

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
        .update_access(None, id, change)
        .await?;
    Ok(axum::Json(user))
}

#[derive(Serialize)]
struct Cleared {
    cleared: u64,
}

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
