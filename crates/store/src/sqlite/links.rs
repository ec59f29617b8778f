//! Links: creation, revision bumps, leasing and the end of a reconcile.

use chrono::{DateTime, Utc};
use sqlx::{SqliteConnection, SqlitePool};
use std::collections::HashMap;

use super::rows::{self, ms, to_json};
use crate::types::{Lease, NewLink};
use crate::{LeaseOutcome, Result};

/// Creates the link, or — for a repeated forward — bumps it, replaces its snapshot and
/// wakes it even when parked: a forward is a person (or rule) asking for a sync now.
pub async fn upsert(conn: &mut SqliteConnection, link: &NewLink) -> Result<()> {
    let now = ms(Utc::now());
    sqlx::query(
        "INSERT INTO links (incident_id, integration_id, snapshot, next_attempt_at, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?4) \
         ON CONFLICT (incident_id, integration_id) DO UPDATE SET rev = rev + 1, \
         snapshot = excluded.snapshot, state = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at",
    )
    .bind(link.incident_id.to_string())
    .bind(link.integration_id.to_string())
    .bind(link.snapshot.as_ref().map(to_json))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The incident changed: every link of it needs another look. A link backing off keeps
/// its schedule (hammering a failing instance helps nobody) and a parked one stays
/// parked until its cause is fixed; both will pick the change up.
pub async fn bump_incident(conn: &mut SqliteConnection, incident_id: uuid::Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE links SET rev = rev + 1, \
         next_attempt_at = CASE state WHEN 'synced' THEN ?1 ELSE next_attempt_at END, \
         state = CASE state WHEN 'synced' THEN 'pending' ELSE state END \
         WHERE incident_id = ?2",
    )
    .bind(ms(Utc::now()))
    .bind(incident_id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn lease_due(
    writer: &SqlitePool,
    pool: &SqlitePool,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
    only_integration: Option<uuid::Uuid>,
) -> Result<Vec<Lease>> {
    // One statement, so two workers can never lease the same link. A link still
    // carrying an owner was leased by a worker that died (or overran) mid-reconcile:
    // if it had no record yet, its create may have reached ServiceNow, so the next
    // attempt looks the record up before creating one.
    let leased = sqlx::query(
        "UPDATE links SET lease_owner = ?1, lease_until = ?2, \
           create_unsure = CASE WHEN sys_id IS NULL AND lease_owner IS NOT NULL THEN 1 ELSE create_unsure END \
         WHERE rowid IN ( \
           SELECT l.rowid FROM links l JOIN integrations i ON i.id = l.integration_id \
           WHERE l.state IN ('pending', 'retrying') AND l.next_attempt_at <= ?3 AND l.lease_until <= ?3 \
             AND i.failing IS NULL AND i.paused_until <= ?3 \
             AND (?5 IS NULL OR l.integration_id = ?5) \
           ORDER BY l.next_attempt_at LIMIT ?4) \
         RETURNING *",
    )
    .bind(owner)
    .bind(ms(lease_until))
    .bind(ms(now))
    .bind(i64::from(limit))
    .bind(only_integration.map(|id| id.to_string()))
    .fetch_all(writer)
    .await?;
    if leased.is_empty() {
        return Ok(Vec::new());
    }
    let links = leased.iter().map(rows::link).collect::<Result<Vec<_>>>()?;

    let mut query = sqlx::QueryBuilder::new("SELECT * FROM incidents WHERE id IN (");
    let mut ids = query.separated(", ");
    for link in &links {
        ids.push_bind(link.incident_id.to_string());
    }
    query.push(")");
    let incidents: HashMap<_, _> = query
        .build()
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| rows::incident(row).map(|i| (i.id, i)))
        .collect::<Result<_>>()?;

    Ok(links
        .into_iter()
        .filter_map(|link| {
            // Incidents are never deleted while links exist (ON DELETE CASCADE), so a
            // miss means the row went away between the statements; skip it.
            let incident = incidents.get(&link.incident_id).cloned()?;
            Some(Lease {
                owner: owner.to_owned(),
                rev: link.rev,
                link,
                incident,
            })
        })
        .collect())
}

/// Extends each lease that is still held (same owner, not yet expired at `now`) to
/// `until`, in one transaction; per lease, whether it was extended.
pub async fn renew(
    writer: &SqlitePool,
    leases: &[Lease],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<bool>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let mut held = Vec::with_capacity(leases.len());
    for lease in leases {
        let renewed = sqlx::query(
            "UPDATE links SET lease_until = ?1 \
             WHERE incident_id = ?2 AND integration_id = ?3 AND lease_owner = ?4 AND lease_until > ?5",
        )
        .bind(ms(until))
        .bind(lease.link.incident_id.to_string())
        .bind(lease.link.integration_id.to_string())
        .bind(&lease.owner)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        held.push(renewed > 0);
    }
    tx.commit().await?;
    Ok(held)
}

/// Ends every lease: only one process may use a SQLite database, so at start-up every
/// lease left belongs to a process that is gone. A link without a record whose worker
/// died may have had its create applied, so the next attempt looks before creating.
pub async fn release_all(writer: &SqlitePool) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE links SET create_unsure = CASE WHEN sys_id IS NULL THEN 1 ELSE create_unsure END, \
         lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL",
    )
    .execute(writer)
    .await?
    .rows_affected())
}

pub async fn complete(pool: &SqlitePool, lease: &Lease, outcome: &LeaseOutcome) -> Result<bool> {
    let now = Utc::now();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let done = complete_in(&mut tx, lease, outcome, now).await?;
    if matches!(outcome, LeaseOutcome::Synced { .. }) {
        mark_success(&mut tx, lease.link.integration_id, now).await?;
    }
    tx.commit().await?;
    Ok(done)
}

pub async fn mark_success(
    conn: &mut SqliteConnection,
    integration_id: uuid::Uuid,
    now: DateTime<Utc>,
) -> Result<()> {
    sqlx::query("UPDATE integrations SET last_success_at = ? WHERE id = ?")
        .bind(ms(now))
        .bind(integration_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// The end of one reconcile, inside the caller's transaction; false when the lease
/// was lost meanwhile (then nothing is written).
pub async fn complete_in(
    tx: &mut SqliteConnection,
    lease: &Lease,
    outcome: &LeaseOutcome,
    now: DateTime<Utc>,
) -> Result<bool> {
    let now = ms(now);
    let incident = lease.link.incident_id.to_string();
    let integration = lease.link.integration_id.to_string();
    let done = match outcome {
        LeaseOutcome::Synced { sys_id, number, sent, servicenow_state } => {
            let mut pushed = lease.link.pushed.clone();
            pushed.extend(sent.iter().map(|(k, v)| (k.clone(), v.clone())));
            sqlx::query(
                "UPDATE links SET sys_id = ?1, number = ?2, servicenow_state = COALESCE(?3, servicenow_state), \
                 pushed = ?4, synced_rev = ?5, state = CASE WHEN rev > ?5 THEN 'pending' ELSE 'synced' END, \
                 attempts = 0, last_error = NULL, create_unsure = 0, last_synced_at = ?6, next_attempt_at = ?6, \
                 lease_owner = NULL, lease_until = 0 \
                 WHERE incident_id = ?7 AND integration_id = ?8 AND lease_owner = ?9",
            )
            .bind(sys_id)
            .bind(number)
            .bind(servicenow_state)
            .bind(to_json(&pushed))
            .bind(lease.rev)
            .bind(now)
            .bind(&incident)
            .bind(&integration)
            .bind(&lease.owner)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0
        }
        LeaseOutcome::UpToDate => sqlx::query(
            "UPDATE links SET synced_rev = ?1, state = CASE WHEN rev > ?1 THEN 'pending' ELSE 'synced' END, \
             attempts = 0, last_error = NULL, next_attempt_at = ?2, lease_owner = NULL, lease_until = 0 \
             WHERE incident_id = ?3 AND integration_id = ?4 AND lease_owner = ?5",
        )
        .bind(lease.rev)
        .bind(now)
        .bind(&incident)
        .bind(&integration)
        .bind(&lease.owner)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0,
        LeaseOutcome::Retry { at, error, create_unsure } => sqlx::query(
            "UPDATE links SET state = 'retrying', attempts = attempts + 1, next_attempt_at = ?1, last_error = ?2, \
             create_unsure = MAX(create_unsure, ?3), lease_owner = NULL, lease_until = 0 \
             WHERE incident_id = ?4 AND integration_id = ?5 AND lease_owner = ?6",
        )
        .bind(ms(*at))
        .bind(error)
        .bind(i64::from(*create_unsure))
        .bind(&incident)
        .bind(&integration)
        .bind(&lease.owner)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0,
        // Settings may have changed while the call was out; then the new settings
        // deserve a try rather than the old rejection.
        LeaseOutcome::Park { error } => sqlx::query(
            "UPDATE links SET state = CASE WHEN rev > ?1 THEN 'pending' ELSE 'parked' END, \
             attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3, lease_owner = NULL, lease_until = 0 \
             WHERE incident_id = ?4 AND integration_id = ?5 AND lease_owner = ?6",
        )
        .bind(lease.rev)
        .bind(error)
        .bind(now)
        .bind(&incident)
        .bind(&integration)
        .bind(&lease.owner)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0,
        LeaseOutcome::Release => sqlx::query(
            "UPDATE links SET lease_owner = NULL, lease_until = 0 \
             WHERE incident_id = ?1 AND integration_id = ?2 AND lease_owner = ?3",
        )
        .bind(&incident)
        .bind(&integration)
        .bind(&lease.owner)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0,
    };
    Ok(done)
}
