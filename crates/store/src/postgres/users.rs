//! Users and sessions of the web UI. Emails are unique and looked up case-insensitively
//! (SQLite's `COLLATE NOCASE`): a unique index on lower(email) and lower() lookups.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::conflict_on;
use super::rows::{json, ms, time, to_json, uuid};
use crate::accounts::{Session, User};
use crate::{Result, StoreError};

fn user(row: &PgRow) -> Result<User> {
    Ok(User {
        id: uuid(row.try_get("id")?)?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        is_admin: row.try_get("is_admin")?,
        team_ids: json(row.try_get("team_ids")?)?,
        created_at: time(row.try_get("created_at")?),
    })
}

pub async fn count(pool: &PgPool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await?)
}

const INSERT: &str = "INSERT INTO users (id, email, password_hash, is_admin, team_ids, created_at)";

pub async fn create(pool: &PgPool, u: &User) -> Result<()> {
    sqlx::query(&format!("{INSERT} VALUES ($1, $2, $3, $4, $5, $6)"))
        .bind(u.id.to_string())
        .bind(u.email.trim())
        .bind(&u.password_hash)
        .bind(u.is_admin)
        .bind(to_json(&u.team_ids))
        .bind(ms(u.created_at))
        .execute(pool)
        .await
        .map_err(|e| conflict_on(e, "email"))?;
    Ok(())
}

pub async fn create_first(pool: &PgPool, u: &User) -> Result<bool> {
    // Under READ COMMITTED two setups racing on two nodes would both see no user; the
    // transaction-scoped advisory lock makes the check and the insert one step.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('snowbound.first_user')::bigint)")
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(&format!(
        "{INSERT} SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM users)"
    ))
    .bind(u.id.to_string())
    .bind(u.email.trim())
    .bind(&u.password_hash)
    .bind(u.is_admin)
    .bind(to_json(&u.team_ids))
    .bind(ms(u.created_at))
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict_on(e, "email"))?;
    tx.commit().await?;
    Ok(inserted.rows_affected() == 1)
}

pub async fn by_email(pool: &PgPool, email: &str) -> Result<Option<User>> {
    sqlx::query("SELECT * FROM users WHERE lower(email) = lower($1)")
        .bind(email.trim())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(user)
        .transpose()
}

pub async fn list(pool: &PgPool) -> Result<Vec<User>> {
    sqlx::query(r#"SELECT * FROM users ORDER BY lower(email) COLLATE "C""#)
        .fetch_all(pool)
        .await?
        .iter()
        .map(user)
        .collect()
}

pub async fn create_session(pool: &PgPool, s: &Session) -> Result<()> {
    // Each login is a good moment to forget the sessions nobody can use any more.
    sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(ms(Utc::now()))
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&s.id)
    .bind(s.user_id.to_string())
    .bind(&s.csrf_token)
    .bind(ms(s.created_at))
    .bind(ms(s.expires_at))
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn session(
    pool: &PgPool,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<(Session, User)>> {
    let row = sqlx::query(
        "SELECT s.id AS session_id, s.csrf_token, s.created_at AS session_created_at, \
         s.expires_at, u.* FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id = $1 AND s.expires_at > $2",
    )
    .bind(id)
    .bind(ms(now))
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let user = user(&row)?;
    let session = Session {
        id: row.try_get("session_id")?,
        user_id: user.id,
        csrf_token: row.try_get("csrf_token")?,
        created_at: time(row.try_get("session_created_at")?),
        expires_at: time(row.try_get("expires_at")?),
    };
    Ok(Some((session, user)))
}

pub async fn delete_session(pool: &PgPool, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn get(pool: &PgPool, id: Uuid) -> Result<User> {
    sqlx::query("SELECT * FROM users WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(user)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

pub async fn delete(pool: &PgPool, id: Uuid) -> Result<()> {
    // Explicit rather than by the cascade alone, as in the SQLite store.
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    tx.commit().await?;
    Ok(())
}

pub async fn set_password(
    pool: &PgPool,
    id: Uuid,
    password_hash: &str,
    keep_session: Option<&str>,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(password_hash)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
        .bind(id.to_string())
        .bind(keep_session.unwrap_or_default())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
