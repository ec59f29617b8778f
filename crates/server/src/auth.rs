//! Who is calling: the admin token sees everything; a team token sees only its teams.
//! Objects of other teams answer 404, so a token cannot even learn that they exist.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use rand::RngCore;
use snowbound_core::Integration;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::{hash_token, AppState};

/// Prefix of generated team tokens, so a leaked one is recognisable in logs and scanners.
pub const TOKEN_PREFIX: &str = "sbt_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Admin,
    Teams(Vec<Uuid>),
}

#[derive(Debug, Clone)]
pub struct Caller {
    /// Named in timeline entries: "admin" or the token's name.
    pub actor: String,
    pub scope: Scope,
}

impl Caller {
    pub fn admin() -> Self {
        Caller {
            actor: "admin".into(),
            scope: Scope::Admin,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.scope == Scope::Admin
    }

    pub fn sees_team(&self, team_id: Uuid) -> bool {
        match &self.scope {
            Scope::Admin => true,
            Scope::Teams(teams) => teams.contains(&team_id),
        }
    }

    /// A team token sees the integrations that serve any of its teams…
    pub fn sees_integration(&self, integration: &Integration) -> bool {
        integration
            .all_team_ids()
            .into_iter()
            .any(|team| self.sees_team(team))
    }

    /// …but changes only those whose root team is one of its teams.
    pub fn owns_integration(&self, integration: &Integration) -> bool {
        self.sees_team(integration.root_team_id)
    }

    /// `None` = no restriction, the store's convention for "every team".
    pub fn team_filter(&self) -> Option<Vec<Uuid>> {
        match &self.scope {
            Scope::Admin => None,
            Scope::Teams(teams) => Some(teams.clone()),
        }
    }

    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("only the admin token may do this"))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let hash = hash_token(token);
        if bool::from(hash.ct_eq(&state.admin_token_hash)) {
            return Ok(Caller::admin());
        }
        match state.store.token_by_hash(&hex::encode(hash)).await? {
            Some(token) => Ok(Caller {
                actor: token.name,
                scope: Scope::Teams(token.team_ids),
            }),
            None => Err(ApiError::unauthorized("the bearer token is not valid")),
        }
    }
}

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the bearer token is not valid"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <token>"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthorized(
            "expected Authorization: Bearer <token>",
        ));
    }
    Ok(token)
}

/// A new random token (256 bits) for a team; only its hash is stored.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}
