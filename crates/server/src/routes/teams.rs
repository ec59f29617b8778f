//! Teams and team-scoped tokens.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use snowbound_core::validate::limits;
use snowbound_core::{new_id, Team};
use snowbound_store::{ApiToken, StoreError};
use uuid::Uuid;

use crate::auth::{generate_token, Caller};
use crate::error::{check_field, ApiError, ApiResult};
use crate::extract::Json;
use crate::state::{hash_token, AppState};

const NAME_MAX_CHARS: usize = limits::NAME;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTeam {
    name: String,
}

fn checked_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid_field("name", "is required"));
    }
    check_field("name", name, NAME_MAX_CHARS)?;
    Ok(name.to_owned())
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateTeam>,
) -> ApiResult<impl IntoResponse> {
    let team = create_team(&state, &caller, &body.name).await?;
    Ok((StatusCode::CREATED, axum::Json(team)))
}

/// Creates a team (admin only); the API and the web UI's Teams page both call this.
pub(crate) async fn create_team(state: &AppState, caller: &Caller, name: &str) -> ApiResult<Team> {
    caller.require_admin()?;
    let team = Team {
        id: new_id(),
        name: checked_name(name)?,
        created_at: Utc::now(),
    };
    state.store.create_team(&team).await.map_err(|e| match e {
        StoreError::Conflict { .. } => {
            ApiError::conflict("conflict", "a team with this name exists").with_field("name")
        }
        other => other.into(),
    })?;
    Ok(team)
}

pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    let teams: Vec<Team> = state
        .store
        .list_teams()
        .await?
        .into_iter()
        .filter(|t| caller.sees_team(t.id))
        .collect();
    Ok(axum::Json(teams))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    team_ids: Vec<Uuid>,
}

#[derive(Serialize)]
struct CreatedToken {
    id: Uuid,
    name: String,
    team_ids: Vec<Uuid>,
    /// Shown this once; only its SHA-256 is stored.
    token: String,
}

pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateToken>,
) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    let name = checked_name(&body.name)?;
    if body.team_ids.is_empty() {
        return Err(ApiError::invalid_field(
            "team_ids",
            "a token needs at least one team",
        ));
    }
    let mut team_ids = Vec::new();
    for team in body.team_ids {
        match state.store.get_team(team).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(ApiError::invalid_field(
                    "team_ids",
                    format!("no such team {team}"),
                ))
            }
            Err(e) => return Err(e.into()),
        }
        if !team_ids.contains(&team) {
            team_ids.push(team);
        }
    }
    let token = generate_token();
    let record = ApiToken {
        id: new_id(),
        name: name.clone(),
        hash: hex::encode(hash_token(&token)),
        team_ids: team_ids.clone(),
        created_at: Utc::now(),
    };
    state.store.create_token(&record).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedToken {
            id: record.id,
            name,
            team_ids,
            token,
        }),
    ))
}
