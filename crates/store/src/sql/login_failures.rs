//! Wrong passwords counted per key, so the login limit holds on every node sharing the
//! database and across restarts. What a count means is `core::login_limits`.

use chrono::{DateTime, Utc};
use snowbound_core::login_limits::{LimitedBy, LoginLimits};

use super::dialect::{Dialect, SqlRow, WriteTx};
use super::statement::Sql;
use super::{rows, SqlStore};
use crate::Result;

pub async fn count_login_failure<D: Dialect>(
    store: &SqlStore<D>,
    keys: &[(String, LimitedBy)],
    limits: &LoginLimits,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    let forget_before = now - limits.forget_after;
    let mut tx = store.db.begin().await?;
    let mut locked_until: Option<DateTime<Utc>> = None;
    tx.execute(
        Sql::new("DELETE FROM login_failures WHERE last_failure_at < $1").bind(forget_before),
    )
    .await?;
    for (key, by) in keys {
        let row = tx
            .fetch_optional(
                Sql::new(
                    "INSERT INTO login_failures (key, failures, last_failure_at) VALUES ($1, 1, $2) \
                     ON CONFLICT (key) DO UPDATE SET failures = login_failures.failures + 1, \
                     last_failure_at = $2 RETURNING failures",
                )
                .bind(key.as_str())
                .bind(now),
            )
            .await?;
        let failures = match row {
            Some(row) => row.int("failures")?,
            None => continue,
        };
        if let Some(lock) = limits.lock_after(*by, failures) {
            // A lock set by a racing failure may be longer: the longer one stays.
            tx.execute(
                Sql::new(format!(
                    "UPDATE login_failures SET locked_until = {}(COALESCE(locked_until, 0), $1) \
                     WHERE key = $2",
                    D::GREATEST
                ))
                .bind(now + lock)
                .bind(key.as_str()),
            )
            .await?;
            let until = now + lock;
            locked_until = Some(locked_until.map_or(until, |l| l.max(until)));
        }
    }
    tx.commit().await?;
    Ok(locked_until)
}

pub async fn login_locked_until<D: Dialect>(
    store: &SqlStore<D>,
    keys: &[String],
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>> {
    if keys.is_empty() {
        return Ok(None);
    }
    // One read for the account and the address: every login asks this first.
    let mut sql =
        Sql::new("SELECT MAX(locked_until) AS until FROM login_failures WHERE locked_until > ");
    sql.push_bind(now).push(" AND key");
    sql.push_in(keys.iter().map(String::as_str));
    let row = store.db.read_optional(sql).await?;
    Ok(row
        .map(|r| r.opt_int("until"))
        .transpose()?
        .flatten()
        .map(rows::time))
}

pub async fn clear_login_failures<D: Dialect>(
    store: &SqlStore<D>,
    key: Option<&str>,
) -> Result<u64> {
    let sql = match key {
        Some(key) => Sql::new("DELETE FROM login_failures WHERE key = $1").bind(key),
        None => Sql::new("DELETE FROM login_failures"),
    };
    store.db.write(sql).await
}
