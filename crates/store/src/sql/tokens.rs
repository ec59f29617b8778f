//! Team API tokens: stored as their SHA-256, revoked rather than deleted.

use chrono::Utc;
use uuid::Uuid;

use super::dialect::Dialect;
use super::statement::Sql;
use super::{conflict_on, rows, touched, SqlStore};
use crate::types::ApiToken;
use crate::Result;

pub async fn create_token<D: Dialect>(store: &SqlStore<D>, token: &ApiToken) -> Result<()> {
    store
        .db
        .write(
            Sql::new(
                "INSERT INTO api_tokens (id, name, hash, team_ids, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token.id)
            .bind(&token.name)
            .bind(&token.hash)
            .bind(rows::to_json(&token.team_ids))
            .bind(token.created_at),
        )
        .await
        .map_err(conflict_on("token"))?;
    Ok(())
}

pub async fn token_by_hash<D: Dialect>(
    store: &SqlStore<D>,
    hash: &str,
) -> Result<Option<ApiToken>> {
    store
        .db
        .read_optional(
            Sql::new("SELECT * FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL").bind(hash),
        )
        .await?
        .as_ref()
        .map(rows::token)
        .transpose()
}

pub async fn list_tokens<D: Dialect>(store: &SqlStore<D>) -> Result<Vec<ApiToken>> {
    let rows = store
        .db
        .read_all(Sql::new(
            "SELECT * FROM api_tokens WHERE revoked_at IS NULL ORDER BY created_at, id",
        ))
        .await?;
    rows.iter().map(rows::token).collect()
}

/// Every request looks its token up afresh, so a revoked token fails on the next one.
pub async fn revoke_token<D: Dialect>(store: &SqlStore<D>, id: Uuid) -> Result<()> {
    let revoked = store
        .db
        .write(
            Sql::new("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(Utc::now())
                .bind(id),
        )
        .await?;
    touched(revoked)
}
