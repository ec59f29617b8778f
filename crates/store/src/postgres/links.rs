//! Links: creation, revision bumps, leasing and the end of a reconcile — the SQLite
//! semantics, made safe for several nodes leasing from one database at once.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;

use super::rows::{self, ms, to_json};
use crate::types::{Lease, NewLink};
use crate::{LeaseOutcome, Result};

/// The channel every node listens on. A notification carries no payload: it only says
/// "links may be due", and the woken engine asks the database what.
pub const CHANNEL: &str = "snowbound_links";

/// Channels are per database, not per schema: a Snowbound kept in another schema than
/// `public` (a second deployment, a test) gets a channel of its own, so deployments
/// sharing a database do not wake each other.
pub fn channel_for(schema: &str) -> String {
    if schema == "public" {
        CHANNEL.to_owned()
    } else {
        format!("{CHANNEL}_{schema}")
    }
}

/// Wakes the idle engines of every node once this transaction commits (PostgreSQL
/// delivers notifications at commit and drops them on rollback).
pub async fn notify(conn: &mut PgConnection, channel: &str) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(channel)
        .execute(conn)
        .await?;
    Ok(())
}

/// Creates the link, or — for a repeated forward — bumps it, replaces its snapshot and
/// wakes it even when parked: a forward is a person (or rule) asking for a sync now.
pub async fn upsert(conn: &mut PgConnection, link: &NewLink) -> Result<()> {
    let now = ms(Utc::now());
    sqlx::query(
        "INSERT INTO links (incident_id, integration_id, snapshot, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $4) \
         ON CONFLICT (incident_id, integration_id) DO UPDATE SET rev = links.rev + 1, \
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
/// its schedule and a parked one stays parked until its cause is fixed; both will pick
/// the change up.
pub async fn bump_incident(conn: &mut PgConnection, incident_id: uuid::Uuid) -> Result<()> {
    sqlx::query(
        "UPDATE links SET rev = rev + 1, \
         next_attempt_at = CASE state WHEN 'synced' THEN $1 ELSE next_attempt_at END, \
         state = CASE state WHEN 'synced' THEN 'pending' ELSE state END \
         WHERE incident_id = $2",
    )
    .bind(ms(Utc::now()))
    .bind(incident_id.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn lease_due(
    pool: &PgPool,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
    only_integration: Option<uuid::Uuid>,
) -> Result<Vec<Lease>> {
    // One statement. `SKIP LOCKED` lets nodes leasing at the same moment each take other
    // links instead of queueing behind one another; the row lock re-checks the WHERE
    // against the newest committed row (READ COMMITTED), so a link another node has just
    // leased no longer qualifies and two nodes can never hold one link. A link still
    // carrying an owner was leased by a worker that died (or overran) mid-reconcile: if
    // it had no record yet, its create may have reached ServiceNow, so the next attempt
    // looks the record up before creating one.
    let leased = sqlx::query(
        "WITH due AS ( \
           SELECT l.incident_id, l.integration_id FROM links l \
           JOIN integrations i ON i.id = l.integration_id \
           WHERE l.state IN ('pending', 'retrying') AND l.next_attempt_at <= $3 AND l.lease_until <= $3 \
             AND i.failing IS NULL AND i.paused_until <= $3 \
             AND ($5::text IS NULL OR l.integration_id = $5) \
           ORDER BY l.next_attempt_at LIMIT $4 \
           FOR UPDATE OF l SKIP LOCKED) \
         UPDATE links SET lease_owner = $1, lease_until = $2, \
           create_unsure = CASE WHEN links.sys_id IS NULL AND links.lease_owner IS NOT NULL \
                           THEN TRUE ELSE links.create_unsure END \
         FROM due WHERE links.incident_id = due.incident_id AND links.integration_id = due.integration_id \
         RETURNING links.*",
    )
    .bind(owner)
    .bind(ms(lease_until))
    .bind(ms(now))
    .bind(i64::from(limit))
    .bind(only_integration.map(|id| id.to_string()))
    .fetch_all(pool)
    .await?;
    if leased.is_empty() {
        return Ok(Vec::new());
    }
    let links = leased.iter().map(rows::link).collect::<Result<Vec<_>>>()?;

    let ids: Vec<String> = links.iter().map(|l| l.incident_id.to_string()).collect();
    let incidents: HashMap<_, _> = sqlx::query("SELECT * FROM incidents WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| rows::incident(row).map(|i| (i.id, i)))
        .collect::<Result<_>>()?;

    let mut leases: Vec<Lease> = links
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
        .collect();
    // RETURNING has no order; hand the most overdue work out first, as SQLite does.
    leases.sort_by_key(|l| l.link.next_attempt_at);
    Ok(leases)
}

/// Extends each lease that is still held (same owner, not yet expired at `now`) to
/// `until`, in one statement; per lease, whether it was extended.
pub async fn renew(
    pool: &PgPool,
    leases: &[Lease],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<bool>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let incidents: Vec<String> = leases
        .iter()
        .map(|l| l.link.incident_id.to_string())
        .collect();
    let integrations: Vec<String> = leases
        .iter()
        .map(|l| l.link.integration_id.to_string())
        .collect();
    let owners: Vec<&str> = leases.iter().map(|l| l.owner.as_str()).collect();
    let renewed: Vec<(String, String, String)> = sqlx::query_as(
        "UPDATE links SET lease_until = $1 \
         FROM unnest($2::text[], $3::text[], $4::text[]) AS held (incident_id, integration_id, owner) \
         WHERE links.incident_id = held.incident_id AND links.integration_id = held.integration_id \
           AND links.lease_owner = held.owner AND links.lease_until > $5 \
         RETURNING links.incident_id, links.integration_id, links.lease_owner",
    )
    .bind(ms(until))
    .bind(&incidents)
    .bind(&integrations)
    .bind(&owners)
    .bind(ms(now))
    .fetch_all(pool)
    .await?;
    // Keyed by owner too: two leases of one link (an old one and its successor) differ.
    let renewed: std::collections::HashSet<(String, String, String)> =
        renewed.into_iter().collect();
    Ok(incidents
        .into_iter()
        .zip(integrations)
        .zip(owners)
        .map(|((incident, integration), owner)| {
            renewed.contains(&(incident, integration, owner.to_owned()))
        })
        .collect())
}

/// Ends every lease, marking links without a record as possibly created (see the
/// SQLite backend; with several nodes this is for tools, not for a node's start-up).
pub async fn release_all(pool: &PgPool) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE links SET create_unsure = CASE WHEN sys_id IS NULL THEN TRUE ELSE create_unsure END, \
         lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL",
    )
    .execute(pool)
    .await?
    .rows_affected())
}

pub async fn complete(pool: &PgPool, lease: &Lease, outcome: &LeaseOutcome) -> Result<bool> {
    let now = ms(Utc::now());
    let incident = lease.link.incident_id.to_string();
    let integration = lease.link.integration_id.to_string();
    let mut tx = pool.begin().await?;
    // Every statement below matches only while the lease is still ours, so a node that
    // lost its lease (expired, taken over) cannot overwrite the new owner's work.
    let done = match outcome {
        LeaseOutcome::Synced { sys_id, number, sent, servicenow_state } => {
            // The integration row first: every writer that touches both an integration
            // and its links (update_integration, delete_integration) locks them in that
            // order, so two nodes can never deadlock on them. Nodes finishing out of
            // order must not move the time backwards.
            sqlx::query(
                "UPDATE integrations SET last_success_at = $1 \
                 WHERE id = $2 AND (last_success_at IS NULL OR last_success_at < $1)",
            )
            .bind(now)
            .bind(&integration)
            .execute(&mut *tx)
            .await?;
            let mut pushed = lease.link.pushed.clone();
            pushed.extend(sent.iter().map(|(k, v)| (k.clone(), v.clone())));
            let done = sqlx::query(
                "UPDATE links SET sys_id = $1, number = $2, servicenow_state = COALESCE($3, servicenow_state), \
                 pushed = $4, synced_rev = $5, state = CASE WHEN rev > $5 THEN 'pending' ELSE 'synced' END, \
                 attempts = 0, last_error = NULL, create_unsure = FALSE, last_synced_at = $6, next_attempt_at = $6, \
                 lease_owner = NULL, lease_until = 0 \
                 WHERE incident_id = $7 AND integration_id = $8 AND lease_owner = $9",
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
                > 0;
            done
        }
        LeaseOutcome::UpToDate => sqlx::query(
            "UPDATE links SET synced_rev = $1, state = CASE WHEN rev > $1 THEN 'pending' ELSE 'synced' END, \
             attempts = 0, last_error = NULL, next_attempt_at = $2, lease_owner = NULL, lease_until = 0 \
             WHERE incident_id = $3 AND integration_id = $4 AND lease_owner = $5",
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
            "UPDATE links SET state = 'retrying', attempts = attempts + 1, next_attempt_at = $1, last_error = $2, \
             create_unsure = create_unsure OR $3, lease_owner = NULL, lease_until = 0 \
             WHERE incident_id = $4 AND integration_id = $5 AND lease_owner = $6",
        )
        .bind(ms(*at))
        .bind(error)
        .bind(*create_unsure)
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
            "UPDATE links SET state = CASE WHEN rev > $1 THEN 'pending' ELSE 'parked' END, \
             attempts = attempts + 1, last_error = $2, next_attempt_at = $3, lease_owner = NULL, lease_until = 0 \
             WHERE incident_id = $4 AND integration_id = $5 AND lease_owner = $6",
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
             WHERE incident_id = $1 AND integration_id = $2 AND lease_owner = $3",
        )
        .bind(&incident)
        .bind(&integration)
        .bind(&lease.owner)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0,
    };
    tx.commit().await?;
    Ok(done)
}
