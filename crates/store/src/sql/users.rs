//! Web UI users and their login sessions. Emails are unique and matched ignoring ASCII
//! case on both backends: SQLite's `lower()` and PostgreSQL's under the "C" collation
//! fold ASCII letters only, and the address looked up is folded the same way here.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::dialect::{Dialect, SqlRow, WriteTx};
use super::statement::Sql;
use super::{conflict_on, found, rows, touched, SqlStore};
use crate::accounts::{Session, User};
use crate::Result;

const INSERT: &str = "INSERT INTO users (id, email, password_hash, is_admin, team_ids, created_at)";

fn with_user_values<'a>(sql: Sql<'a>, user: &'a User) -> Sql<'a> {
    sql.bind(user.id)
        .bind(user.email.trim())
        .bind(&user.password_hash)
        .bind(user.is_admin)
        .bind(rows::to_json(&user.team_ids))
        .bind(user.created_at)
}

pub async fn count_users<D: Dialect>(store: &SqlStore<D>) -> Result<i64> {
    let row = store
        .db
        .read_optional(Sql::new("SELECT COUNT(*) AS users FROM users"))
        .await?;
    found(row)?.int("users")
}

pub async fn create_user<D: Dialect>(store: &SqlStore<D>, user: &User) -> Result<()> {
    store
        .db
        .write(with_user_values(
            Sql::new(format!("{INSERT} VALUES ($1, $2, $3, $4, $5, $6)")),
            user,
        ))
        .await
        .map_err(conflict_on("email"))?;
    Ok(())
}

/// Two setups racing (on one node or two) must not both see no user: the key lock makes
/// the check and the insert one step.
pub async fn create_first_user<D: Dialect>(store: &SqlStore<D>, user: &User) -> Result<bool> {
    let mut tx = store.db.begin().await?;
    tx.lock_key("snowbound.first_user").await?;
    let inserted = tx
        .execute(with_user_values(
            Sql::new(format!(
                "{INSERT} SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS (SELECT 1 FROM users)"
            )),
            user,
        ))
        .await
        .map_err(conflict_on("email"))?;
    tx.commit().await?;
    Ok(inserted == 1)
}

pub async fn user_by_email<D: Dialect>(store: &SqlStore<D>, email: &str) -> Result<Option<User>> {
    store
        .db
        .read_optional(
            Sql::new("SELECT * FROM users WHERE lower(email) = $1")
                .bind(email.trim().to_ascii_lowercase()),
        )
        .await?
        .as_ref()
        .map(rows::user)
        .transpose()
}

pub async fn list_users<D: Dialect>(store: &SqlStore<D>) -> Result<Vec<User>> {
    let rows = store
        .db
        .read_all(Sql::new("SELECT * FROM users ORDER BY lower(email), id"))
        .await?;
    rows.iter().map(rows::user).collect()
}

pub async fn get_user<D: Dialect>(store: &SqlStore<D>, id: Uuid) -> Result<User> {
    let row = store
        .db
        .read_optional(Sql::new("SELECT * FROM users WHERE id = $1").bind(id))
        .await?;
    rows::user(&found(row)?)
}

pub async fn delete_user<D: Dialect>(store: &SqlStore<D>, id: Uuid) -> Result<()> {
    let mut tx = store.db.begin().await?;
    // Sessions go explicitly, not only by the foreign key's cascade: a SQLite database
    // opened without `foreign_keys` must not leave a deleted user signed in.
    tx.execute(Sql::new("DELETE FROM sessions WHERE user_id = $1").bind(id))
        .await?;
    let deleted = tx
        .execute(Sql::new("DELETE FROM users WHERE id = $1").bind(id))
        .await?;
    touched(deleted)?;
    tx.commit().await
}

pub async fn update_user_access<D: Dialect>(
    store: &SqlStore<D>,
    id: Uuid,
    is_admin: bool,
    team_ids: &[Uuid],
) -> Result<()> {
    let updated = store
        .db
        .write(
            Sql::new("UPDATE users SET is_admin = $1, team_ids = $2 WHERE id = $3")
                .bind(is_admin)
                .bind(rows::to_json(&team_ids))
                .bind(id),
        )
        .await?;
    touched(updated)
}

pub async fn set_user_password<D: Dialect>(
    store: &SqlStore<D>,
    id: Uuid,
    password_hash: &str,
    keep_session: Option<&str>,
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    let updated = tx
        .execute(
            Sql::new("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(password_hash)
                .bind(id),
        )
        .await?;
    touched(updated)?;
    tx.execute(
        Sql::new("DELETE FROM sessions WHERE user_id = $1 AND id <> $2")
            .bind(id)
            .bind(keep_session.unwrap_or_default()),
    )
    .await?;
    tx.commit().await
}

pub async fn create_session<D: Dialect>(store: &SqlStore<D>, session: &Session) -> Result<()> {
    let mut tx = store.db.begin().await?;
    // Each login is a good moment to forget the sessions nobody can use any more.
    tx.execute(Sql::new("DELETE FROM sessions WHERE expires_at <= $1").bind(Utc::now()))
        .await?;
    tx.execute(
        Sql::new(
            "INSERT INTO sessions (id, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.id)
        .bind(session.user_id)
        .bind(&session.csrf_token)
        .bind(session.created_at)
        .bind(session.expires_at),
    )
    .await?;
    tx.commit().await
}

pub async fn session<D: Dialect>(
    store: &SqlStore<D>,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<(Session, User)>> {
    let row = store
        .db
        .read_optional(
            Sql::new(
                "SELECT s.id AS session_id, s.csrf_token, s.created_at AS session_created_at, \
                 s.expires_at, u.* FROM sessions s JOIN users u ON u.id = s.user_id \
                 WHERE s.id = $1 AND s.expires_at > $2",
            )
            .bind(id)
            .bind(now),
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let user = rows::user(&row)?;
    let session = Session {
        id: row.text("session_id")?,
        user_id: user.id,
        csrf_token: row.text("csrf_token")?,
        created_at: rows::time(row.int("session_created_at")?),
        expires_at: rows::time(row.int("expires_at")?),
    };
    Ok(Some((session, user)))
}

pub async fn delete_session<D: Dialect>(store: &SqlStore<D>, id: &str) -> Result<()> {
    store
        .db
        .write(Sql::new("DELETE FROM sessions WHERE id = $1").bind(id))
        .await?;
    Ok(())
}
