//! Teams and team-scoped tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use snowbound_core::Team;
use snowbound_services::teams::NewToken;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::Json;
use crate::state::AppState;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    name: String,
}

#[utoipa::path(post, operation_id = "teams_create", path = "/teams", tag = "teams", description = "Admin only.",
    request_body = CreateTeam,
    responses((status = 201, description = "The team", body = Team)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateTeam>,
) -> ApiResult<impl IntoResponse> {
    let team = state.services.teams().create(&caller, &body.name).await?;
    Ok((StatusCode::CREATED, axum::Json(team)))
}

/// The teams the caller belongs to (every team for the admin).
#[utoipa::path(get, operation_id = "teams_list", path = "/teams", tag = "teams",
    responses((status = 200, description = "The teams", body = Vec<Team>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(state.services.teams().list(&caller).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    team_ids: Vec<Uuid>,
}

#[derive(Serialize, ToSchema)]
struct CreatedToken {
    id: Uuid,
    name: String,
    team_ids: Vec<Uuid>,
    /// Shown this once; only its SHA-256 is stored.
    token: String,
}

#[utoipa::path(post, operation_id = "tokens_create", path = "/tokens", tag = "teams",
    description = "Admin only. A bearer token scoped to the teams given; shown in this answer only.",
    request_body = CreateToken,
    responses((status = 201, description = "The token, shown this once", body = CreatedToken)))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateToken>,
) -> ApiResult<impl IntoResponse> {
    let new = NewToken {
        name: body.name,
        team_ids: body.team_ids,
    };
    let created = state.services.teams().create_token(&caller, new).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedToken {
            id: created.record.id,
            name: created.record.name,
            team_ids: created.record.team_ids,
            token: created.token,
        }),
    ))
}
