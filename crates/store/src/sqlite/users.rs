//! Users and sessions of the web UI.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

use super::conflict_on;
use super::rows::{json, ms, time, to_json, uuid};
use crate::accounts::{Session, User};
use crate::{Result, StoreError};

fn user(row: &SqliteRow) -> Result<User> {
    Ok(User {
        id: uuid(row.try_get("id")?)?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        team_ids: json(row.try_get("team_ids")?)?,
        created_at: time(row.try_get("created_at")?),
    })
}

pub async fn count(pool: &SqlitePool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await?)
}

const INSERT: &str = "INSERT INTO users (id, email, password_hash, is_admin, team_ids, created_at)";

pub async fn create(pool: &SqlitePool, u: &User) -> Result<()> {
    sqlx::query(&format!("{INSERT} VALUES (?, ?, ?, ?, ?, ?)"))
        .bind(u.id.to_string())
        .bind(u.email.trim())
        .bind(&u.password_hash)
        .bind(u.is_admin as i64)
        .bind(to_json(&u.team_ids))
        .bind(ms(u.created_at))
        .execute(pool)
        .await
        .map_err(|e| conflict_on(e, "email"))?;
    Ok(())
}

pub async fn create_first(pool: &SqlitePool, u: &User) -> Result<bool> {
    let inserted = sqlx::query(&format!(
        "{INSERT} SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM users)"
    ))
    .bind(u.id.to_string())
    .bind(u.email.trim())
    .bind(&u.password_hash)
    .bind(u.is_admin as i64)
    .bind(to_json(&u.team_ids))
    .bind(ms(u.created_at))
    .execute(pool)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

pub async fn by_email(pool: &SqlitePool, email: &str) -> Result<Option<User>> {
    sqlx::query("SELECT * FROM users WHERE email = ?")
        .bind(email.trim())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(user)
        .transpose()
}

pub async fn list(pool: &SqlitePool) -> Result<Vec<User>> {
    sqlx::query("SELECT * FROM users ORDER BY email")
        .fetch_all(pool)
        .await?
        .iter()
        .map(user)
        .collect()
}

pub async fn create_session(pool: &SqlitePool, s: &Session) -> Result<()> {
    // Each login is a good moment to forget the sessions nobody can use any more.
    sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
        .bind(ms(Utc::now()))
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO sessions (id, user_id, csrf_token, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
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
    pool: &SqlitePool,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<(Session, User)>> {
    let row = sqlx::query(
        "SELECT s.id AS session_id, s.csrf_token, s.created_at AS session_created_at, \
         s.expires_at, u.* FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.id = ? AND s.expires_at > ?",
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

pub async fn delete_session(pool: &SqlitePool, id: &str) -> Result<()> {
    sqlx::query("DELETE FROM sessions WHERE id = ?")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

pub async fn get(pool: &SqlitePool, id: Uuid) -> Result<User> {
    sqlx::query("SELECT * FROM users WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(user)
        .transpose()?
        .ok_or(StoreError::NotFound)
}

pub async fn delete(pool: &SqlitePool, id: Uuid) -> Result<()> {
    // Sessions go explicitly, not only by the foreign key's cascade: a database opened
    // without `foreign_keys` must not leave a deleted user signed in.
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = ?")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    let deleted = sqlx::query("DELETE FROM users WHERE id = ?")
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
    pool: &SqlitePool,
    id: Uuid,
    password_hash: &str,
    keep_session: Option<&str>,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    let updated = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
        .bind(password_hash)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    sqlx::query("DELETE FROM sessions WHERE user_id = ? AND id <> ?")
        .bind(id.to_string())
        .bind(keep_session.unwrap_or_default())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SecretBox, SqliteStore, Store, StoreError};
    use uuid::Uuid;

    fn someone(email: &str) -> User {
        User {
            id: Uuid::now_v7(),
            email: email.into(),
            password_hash: "$argon2id$x".into(),
            is_admin: false,
            team_ids: vec![Uuid::now_v7()],
            created_at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn users_and_sessions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url, SecretBox::random()).await.unwrap();
        let first = someone("Ada@example.com");
        assert!(store.create_first_user(&first).await.unwrap());
        assert!(!store.create_first_user(&someone("b@x")).await.unwrap());
        assert_eq!(store.count_users().await.unwrap(), 1);
        assert!(matches!(
            store.create_user(&someone("ada@EXAMPLE.com")).await,
            Err(StoreError::Conflict { field: "email" })
        ));
        let found = store
            .user_by_email("ada@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (found.id, found.team_ids),
            (first.id, first.team_ids.clone())
        );

        let now = Utc::now();
        let session = Session {
            id: "abc".into(),
            user_id: first.id,
            csrf_token: "csrf".into(),
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
        };
        store.create_session(&session).await.unwrap();
        let (s, u) = store.session("abc", now).await.unwrap().unwrap();
        assert_eq!((s.csrf_token.as_str(), u.id), ("csrf", first.id));
        let later = now + chrono::Duration::hours(2);
        assert!(store.session("abc", later).await.unwrap().is_none());
        store.delete_session("abc").await.unwrap();
        assert!(store.session("abc", now).await.unwrap().is_none());
    }
}
