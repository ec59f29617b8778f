//! Who is calling, from the `Authorization` header: the admin token (compared as SHA-256
//! in constant time) or a team token (stored hashed). The caller type itself is the
//! services' ([`snowbound_services::Caller`]).

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::{hash_token, AppState};

pub use snowbound_services::teams::{generate_token, TOKEN_PREFIX};
pub use snowbound_services::{Caller, Scope};

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        let hash = hash_token(token);
        if bool::from(hash.ct_eq(&state.admin_token_hash)) {
            return Ok(Caller::admin());
        }
        match state.services.teams().token_caller(&hash).await? {
            Some(caller) => Ok(caller),
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
