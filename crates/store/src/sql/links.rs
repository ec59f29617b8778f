//! Links: creation, revision bumps, leasing and the end of a reconcile.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use snowbound_core::TimelineEntry;
use uuid::Uuid;

use super::dialect::{Dialect, SqlRow, WriteTx};
use super::script::Script;
use super::statement::Sql;
use super::{api_calls, found, incidents, rows, touched, SqlStore};
use crate::types::{ApiCallRecord, Lease, Link, LinkHold, NewLink};
use crate::{Completion, LeaseOutcome, Result};

/// Creates the link, or — for a repeated forward — bumps it, replaces its snapshot and
/// wakes it even when parked: a forward is a person (or rule) asking for a sync now.
/// With `hold` a new link waits for a rule's delay; a repeated forward ends any hold.
pub(super) async fn upsert<T: WriteTx>(
    tx: &mut T,
    link: &NewLink,
    hold: Option<&LinkHold>,
) -> Result<()> {
    let links = [(link, hold)];
    let mut script = Script::for_tx(tx);
    upsert_many(&mut script, &links);
    tx.links_due();
    script.run(tx).await
}

/// New links, due at once or when their hold ends; a link that exists already starts
/// over from its first attempt. No link may be named twice. The caller says
/// `links_due`.
pub(super) fn upsert_many<'r>(
    script: &mut Script<'r>,
    links: &'r [(&'r NewLink, Option<&'r LinkHold>)],
) {
    let now = Utc::now();
    script.insert_rows(
        "INSERT INTO links (incident_id, integration_id, snapshot, next_attempt_at, created_at, \
         hold_until, hold_rule_id, hold_rule_name) VALUES ",
        " ON CONFLICT (incident_id, integration_id) DO UPDATE SET rev = links.rev + 1, \
         snapshot = excluded.snapshot, state = 'pending', attempts = 0, \
         next_attempt_at = excluded.next_attempt_at, hold_until = excluded.hold_until, \
         hold_rule_id = excluded.hold_rule_id, hold_rule_name = excluded.hold_rule_name",
        links,
        move |&(link, hold)| {
            vec![
                link.incident_id.into(),
                link.integration_id.into(),
                link.snapshot.as_ref().map(rows::to_json).into(),
                hold.map_or(now, |h| h.until.max(now)).into(),
                now.into(),
                hold.map(|h| h.until.timestamp_millis()).into(),
                hold.map(|h| h.rule_id).into(),
                hold.map(|h| h.rule_name.as_str()).into(),
            ]
        },
    );
}

/// The incident was resolved at `at`: its links still held then (no record, no lease)
/// are deleted unsent. Answers (integration name, rule id, rule name) of each.
pub(super) async fn drop_held(
    tx: &mut impl WriteTx,
    incident_id: Uuid,
    at: DateTime<Utc>,
) -> Result<Vec<(String, Uuid, String)>> {
    const HELD: &str = "l.incident_id = $1 AND l.hold_until > $2 AND l.sys_id IS NULL \
                        AND l.lease_owner IS NULL";
    let held = tx
        .fetch_all(
            Sql::new(format!(
                "SELECT l.integration_id, l.hold_rule_id, l.hold_rule_name, i.display_name \
                 FROM links l JOIN integrations i ON i.id = l.integration_id WHERE {HELD}"
            ))
            .bind(incident_id)
            .bind(at),
        )
        .await?;
    let mut dropped = Vec::new();
    for row in held {
        let integration_id = rows::parse_uuid(&row.text("integration_id")?)?;
        let deleted = tx
            .execute(
                Sql::new(
                    "DELETE FROM links WHERE incident_id = $1 AND hold_until > $2 \
                     AND sys_id IS NULL AND lease_owner IS NULL AND integration_id = $3",
                )
                .bind(incident_id)
                .bind(at)
                .bind(integration_id),
            )
            .await?;
        if deleted > 0 {
            let rule_id = row
                .opt_text("hold_rule_id")?
                .map(|id| rows::parse_uuid(&id))
                .transpose()?
                .unwrap_or_default();
            dropped.push((
                row.text("display_name")?,
                rule_id,
                row.opt_text("hold_rule_name")?.unwrap_or_default(),
            ));
        }
    }
    Ok(dropped)
}

/// The incident changed: every link of it needs another look. A link backing off keeps
/// its schedule (hammering a failing instance helps nobody) and a parked one stays
/// parked until its cause is fixed; both will pick the change up.
pub(super) async fn bump_incident<T: WriteTx>(tx: &mut T, incident_id: Uuid) -> Result<()> {
    let ids = [incident_id];
    let mut script = Script::for_tx(tx);
    bump_incidents(&mut script, &ids);
    tx.links_due();
    script.run(tx).await
}

/// The caller says `links_due`.
pub(super) fn bump_incidents<'r>(script: &mut Script<'r>, incident_ids: &'r [Uuid]) {
    for chunk in incident_ids.chunks(1_000) {
        let sql = script.start(
            "UPDATE links SET rev = rev + 1, next_attempt_at = CASE state WHEN 'synced' THEN ",
        );
        sql.push_bind(Utc::now())
            .push(
                " ELSE next_attempt_at END, \
                 state = CASE state WHEN 'synced' THEN 'pending' ELSE state END \
                 WHERE incident_id",
            )
            .push_in(chunk.iter().copied());
    }
}

pub async fn forward<D: Dialect>(
    store: &SqlStore<D>,
    link: &NewLink,
    timeline: &TimelineEntry,
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    upsert(&mut tx, link, None).await?;
    incidents::append_timeline(&mut tx, link.incident_id, std::slice::from_ref(timeline)).await?;
    tx.commit().await
}

pub async fn links_of_incident<D: Dialect>(
    store: &SqlStore<D>,
    incident_id: Uuid,
) -> Result<Vec<Link>> {
    let rows = store
        .db
        .read_all(
            Sql::new(
                "SELECT * FROM links WHERE incident_id = $1 ORDER BY created_at, integration_id",
            )
            .bind(incident_id),
        )
        .await?;
    rows.iter().map(rows::link).collect()
}

pub async fn get_link<D: Dialect>(
    store: &SqlStore<D>,
    incident_id: Uuid,
    integration_id: Uuid,
) -> Result<Link> {
    let row = store
        .db
        .read_optional(
            Sql::new("SELECT * FROM links WHERE incident_id = $1 AND integration_id = $2")
                .bind(incident_id)
                .bind(integration_id),
        )
        .await?;
    rows::link(&found(row)?)
}

pub async fn retry_link<D: Dialect>(
    store: &SqlStore<D>,
    incident_id: Uuid,
    integration_id: Uuid,
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    let updated = tx
        .execute(
            Sql::new(
                "UPDATE links SET rev = rev + 1, state = 'pending', attempts = 0, \
                 next_attempt_at = $1 WHERE incident_id = $2 AND integration_id = $3",
            )
            .bind(Utc::now())
            .bind(incident_id)
            .bind(integration_id),
        )
        .await?;
    touched(updated)?;
    tx.links_due();
    tx.commit().await
}

/// Forgets a record deleted in ServiceNow so the next reconcile creates it again; the
/// create is marked unsure, so the engine looks it up by correlation id first.
pub async fn recreate_link<D: Dialect>(
    store: &SqlStore<D>,
    incident_id: Uuid,
    integration_id: Uuid,
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    let updated = tx
        .execute(
            Sql::new(
                "UPDATE links SET sys_id = NULL, number = NULL, servicenow_state = NULL, \
                 pushed = '{}', create_unsure = TRUE, rev = rev + 1, state = 'pending', \
                 attempts = 0, next_attempt_at = $1 \
                 WHERE incident_id = $2 AND integration_id = $3 AND state = 'parked' \
                 AND sys_id IS NOT NULL",
            )
            .bind(Utc::now())
            .bind(incident_id)
            .bind(integration_id),
        )
        .await?;
    touched(updated)?;
    tx.links_due();
    tx.commit().await
}

pub async fn lease_due_links<D: Dialect>(
    store: &SqlStore<D>,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
    only_integration: Option<Uuid>,
) -> Result<Vec<Lease>> {
    // One statement, so two workers can never lease the same link. On PostgreSQL the row
    // lock re-checks the WHERE against the newest committed row (READ COMMITTED), so a
    // link another node has just leased no longer qualifies. A link still carrying an
    // owner was leased by a worker that died (or overran) mid-reconcile: if it had no
    // record yet, its create may have reached ServiceNow, so the next attempt looks the
    // record up before creating one.
    let leased = match only_integration {
        Some(id) => lease_rows(store, owner, now, lease_until, limit, Some(id)).await?,
        None => {
            let integrations = store
                .db
                .read_all(Sql::new(
                    "SELECT id, failing, paused_until FROM integrations",
                ))
                .await?;
            let mut open = Vec::new();
            for row in &integrations {
                if row.opt_text("failing")?.is_none() && rows::time(row.int("paused_until")?) <= now
                {
                    open.push(rows::parse_uuid(&row.text("id")?)?);
                }
            }
            if open.len() == integrations.len() {
                lease_rows(store, owner, now, lease_until, limit, None).await?
            } else {
                // One integration blocked: the links due first may all be its backlog,
                // so each open integration is leased on its own (a range scan each).
                let mut leased = Vec::new();
                for id in open {
                    let room = limit.saturating_sub(leased.len() as u32);
                    if room == 0 {
                        break;
                    }
                    leased
                        .extend(lease_rows(store, owner, now, lease_until, room, Some(id)).await?);
                }
                leased
            }
        }
    };
    if leased.is_empty() {
        return Ok(Vec::new());
    }
    let links = leased.iter().map(rows::link).collect::<Result<Vec<_>>>()?;

    let mut sql = Sql::new("SELECT * FROM incidents WHERE id");
    sql.push_in(links.iter().map(|l| l.incident_id));
    let incidents: HashMap<_, _> = store
        .db
        .read_all(sql)
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
    // RETURNING has no order: hand the most overdue work out first.
    leases.sort_by_key(|l| {
        (
            l.link.next_attempt_at,
            l.link.incident_id,
            l.link.integration_id,
        )
    });
    Ok(leases)
}

/// The lease statement itself: up to `limit` due links, of one integration or of all.
async fn lease_rows<D: Dialect>(
    store: &SqlStore<D>,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
    only_integration: Option<Uuid>,
) -> Result<Vec<D::Row>> {
    let skip_locked = D::SKIP_LOCKED;
    let one_integration = if only_integration.is_some() {
        "AND l.integration_id = $5"
    } else {
        ""
    };
    let mut sql = Sql::new(format!(
        "WITH due AS ( \
           SELECT l.incident_id, l.integration_id FROM links l \
           JOIN integrations i ON i.id = l.integration_id \
           WHERE l.state IN ('pending', 'retrying') AND l.next_attempt_at <= $3 \
             AND l.lease_until <= $3 AND i.failing IS NULL AND i.paused_until <= $3 \
             {one_integration} \
           ORDER BY l.next_attempt_at LIMIT $4 {skip_locked}) \
         UPDATE links SET lease_owner = $1, lease_until = $2, \
           create_unsure = CASE WHEN links.sys_id IS NULL AND links.lease_owner IS NOT NULL \
                           THEN TRUE ELSE links.create_unsure END \
         FROM due WHERE links.incident_id = due.incident_id \
           AND links.integration_id = due.integration_id \
         RETURNING *"
    ))
    .bind(owner)
    .bind(lease_until)
    .bind(now)
    .bind(i64::from(limit));
    if let Some(id) = only_integration {
        sql = sql.bind(id);
    }
    store.db.write_returning(sql).await
}

/// Positions of `leases` in (incident, integration) order: the order every batch locks
/// links in, so two PostgreSQL nodes writing overlapping batches cannot deadlock.
fn lock_order<'a>(leases: impl Iterator<Item = &'a Lease>) -> Vec<usize> {
    let mut order: Vec<(usize, (Uuid, Uuid))> = leases
        .map(|l| (l.link.incident_id, l.link.integration_id))
        .enumerate()
        .collect();
    order.sort_by_key(|(_, key)| *key);
    order.into_iter().map(|(position, _)| position).collect()
}

pub async fn renew_leases<D: Dialect>(
    store: &SqlStore<D>,
    leases: &[Lease],
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<bool>> {
    let mut held = vec![false; leases.len()];
    if leases.is_empty() {
        return Ok(held);
    }
    let mut tx = store.db.begin().await?;
    for position in lock_order(leases.iter()) {
        let lease = &leases[position];
        held[position] = tx
            .execute(
                Sql::new(
                    "UPDATE links SET lease_until = $1 WHERE incident_id = $2 \
                     AND integration_id = $3 AND lease_owner = $4 AND lease_until > $5",
                )
                .bind(until)
                .bind(lease.link.incident_id)
                .bind(lease.link.integration_id)
                .bind(&lease.owner)
                .bind(now),
            )
            .await?
            > 0;
    }
    tx.commit().await?;
    Ok(held)
}

/// As an expired lease is taken over in [`lease_due_links`]: a link without a record may
/// have been created by the worker that held it.
pub async fn release_all_leases<D: Dialect>(store: &SqlStore<D>) -> Result<u64> {
    let mut tx = store.db.begin().await?;
    let released = tx
        .execute(Sql::new(
            "UPDATE links SET lease_owner = NULL, lease_until = 0, \
             create_unsure = CASE WHEN sys_id IS NULL THEN TRUE ELSE create_unsure END \
             WHERE lease_owner IS NOT NULL",
        ))
        .await?;
    // The dead process's poke reads and polls too: read and poll again now, not when
    // their leases would have run out.
    for table in ["inbound_pokes", "inbound_polls"] {
        tx.execute(Sql::new(format!(
            "UPDATE {table} SET lease_owner = NULL, lease_until = 0 WHERE lease_owner IS NOT NULL"
        )))
        .await?;
    }
    if released > 0 {
        tx.links_due();
    }
    tx.commit().await?;
    Ok(released)
}

pub async fn complete_lease<D: Dialect>(
    store: &SqlStore<D>,
    lease: &Lease,
    outcome: &LeaseOutcome,
) -> Result<bool> {
    let ours = complete(store, &[(lease, outcome, &[])]).await?;
    Ok(ours[0])
}

pub async fn complete_leases<D: Dialect>(
    store: &SqlStore<D>,
    done: &[Completion],
) -> Result<Vec<bool>> {
    let done: Vec<_> = done
        .iter()
        .map(|c| (&c.lease, &c.outcome, c.calls.as_slice()))
        .collect();
    complete(store, &done).await
}

/// Finished reconciles, in one transaction: the integrations that succeeded, then the
/// API calls, then the links in lock order, then one prune of the log per integration.
async fn complete<D: Dialect>(
    store: &SqlStore<D>,
    done: &[(&Lease, &LeaseOutcome, &[ApiCallRecord])],
) -> Result<Vec<bool>> {
    let mut ours = vec![false; done.len()];
    if done.is_empty() {
        return Ok(ours);
    }
    let now = Utc::now();
    let mut tx = store.db.begin().await?;
    // Integration rows first, as every writer touching an integration and its links does.
    let succeeded: BTreeSet<Uuid> = done
        .iter()
        .filter(|(_, outcome, _)| matches!(outcome, LeaseOutcome::Synced { .. }))
        .map(|(lease, _, _)| lease.link.integration_id)
        .collect();
    for integration_id in succeeded {
        // Reconciles finishing out of order must not move the time backwards.
        tx.execute(
            Sql::new(
                "UPDATE integrations SET last_success_at = $1 \
                 WHERE id = $2 AND (last_success_at IS NULL OR last_success_at < $1)",
            )
            .bind(now)
            .bind(integration_id),
        )
        .await?;
    }
    let calls: Vec<api_calls::LoggedCall> = done
        .iter()
        .flat_map(|(lease, _, calls)| {
            let link = &lease.link;
            calls
                .iter()
                .map(|call| (link.integration_id, Some(link.incident_id), call))
        })
        .collect();
    api_calls::insert(&mut tx, &calls).await?;
    let logged: BTreeSet<Uuid> = calls
        .iter()
        .map(|(integration_id, _, _)| *integration_id)
        .collect();
    if !D::LOCK_ROWS.is_empty() {
        lock_links(
            &mut tx,
            done.iter().map(|(lease, _, _)| *lease),
            D::LOCK_ROWS,
        )
        .await?;
    }
    let written = complete_links(&mut tx, done, now).await?;
    for (position, (lease, _, _)) in done.iter().enumerate() {
        let key = (lease.link.incident_id, lease.link.integration_id);
        ours[position] = written.contains(&key);
    }
    for integration_id in logged {
        api_calls::prune(&mut tx, integration_id).await?;
    }
    tx.commit().await?;
    Ok(ours)
}

/// Rows per completion UPDATE: twelve arguments each stays far below either driver's
/// bind limit (a batch is at most the engine's 256 completions anyway).
const LINKS_PER_UPDATE: usize = 200;

/// Takes the row locks of the batch's links in (incident, integration) order, the order
/// every batch locks links in, so two PostgreSQL nodes writing overlapping batches cannot
/// deadlock (one multi-row UPDATE locks in whatever order its join runs).
async fn lock_links<'a>(
    tx: &mut impl WriteTx,
    leases: impl Iterator<Item = &'a Lease>,
    lock: &str,
) -> Result<()> {
    let mut keys: Vec<(Uuid, Uuid)> = leases
        .map(|l| (l.link.incident_id, l.link.integration_id))
        .collect();
    keys.sort();
    for chunk in keys.chunks(LINKS_PER_UPDATE) {
        let mut sql = Sql::new("SELECT 1 FROM links WHERE (incident_id, integration_id) IN (");
        for (n, (incident_id, integration_id)) in chunk.iter().enumerate() {
            sql.push(if n == 0 { "(" } else { ", (" });
            sql.push_bind(*incident_id).push(", ");
            sql.push_bind(*integration_id).push(")");
        }
        sql.push(&format!(") ORDER BY incident_id, integration_id {lock}"));
        tx.fetch_all(sql).await?;
    }
    Ok(())
}

/// The ends of the batch's reconciles, as few statements as the bind limit allows: one
/// row of values per lease names its outcome (`kind`) and what it sets, and every column's
/// CASE applies it. Only rows whose lease is still ours are written (so a worker that lost
/// its lease cannot overwrite the new owner's work); the (incident, integration) of each
/// written row comes back.
async fn complete_links(
    tx: &mut impl WriteTx,
    done: &[(&Lease, &LeaseOutcome, &[ApiCallRecord])],
    now: DateTime<Utc>,
) -> Result<HashSet<(Uuid, Uuid)>> {
    // `seen` is the revision leased; `due` when the link is next due (now, or a retry's
    // time). Settings may have changed while a parked link's call was out (`rev > seen`):
    // then the new settings deserve a try rather than the old rejection.
    const UPDATE: &str = "UPDATE links SET \
        sys_id = CASE WHEN v.kind = 'synced' THEN v.sys_id ELSE links.sys_id END, \
        number = CASE WHEN v.kind = 'synced' THEN v.number ELSE links.number END, \
        servicenow_state = CASE WHEN v.kind = 'synced' \
            THEN COALESCE(v.sn_state, links.servicenow_state) ELSE links.servicenow_state END, \
        pushed = CASE WHEN v.kind = 'synced' THEN v.pushed \
            WHEN v.kind = 'retry' AND v.unsure AND links.sys_id IS NULL THEN v.pushed \
            ELSE links.pushed END, \
        synced_rev = CASE WHEN v.kind IN ('synced', 'up_to_date') THEN v.seen \
            ELSE links.synced_rev END, \
        state = CASE \
            WHEN v.kind IN ('synced', 'up_to_date') \
                THEN CASE WHEN links.rev > v.seen THEN 'pending' ELSE 'synced' END \
            WHEN v.kind = 'retry' THEN 'retrying' \
            WHEN v.kind = 'park' THEN CASE WHEN links.rev > v.seen THEN 'pending' ELSE 'parked' END \
            ELSE links.state END, \
        attempts = CASE WHEN v.kind IN ('synced', 'up_to_date') THEN 0 \
            WHEN v.kind IN ('retry', 'park') THEN links.attempts + 1 ELSE links.attempts END, \
        last_error = CASE WHEN v.kind IN ('synced', 'up_to_date') THEN NULL \
            WHEN v.kind IN ('retry', 'park') THEN v.error ELSE links.last_error END, \
        create_unsure = CASE WHEN v.kind = 'synced' THEN FALSE \
            WHEN v.kind = 'retry' THEN (links.create_unsure OR v.unsure) \
            ELSE links.create_unsure END, \
        last_synced_at = CASE WHEN v.kind = 'synced' THEN v.due ELSE links.last_synced_at END, \
        next_attempt_at = CASE WHEN v.kind = 'release' THEN links.next_attempt_at ELSE v.due END, \
        lease_owner = NULL, lease_until = 0 \
        FROM v WHERE links.incident_id = v.incident AND links.integration_id = v.integration \
          AND links.lease_owner = v.owner \
        RETURNING links.incident_id, links.integration_id";
    let mut written = HashSet::new();
    for chunk in done.chunks(LINKS_PER_UPDATE) {
        let mut sql = Sql::new(
            "WITH v (incident, integration, owner, kind, sys_id, number, sn_state, pushed, \
             seen, due, error, unsure) AS (VALUES ",
        );
        for (n, &(lease, outcome, _)) in chunk.iter().enumerate() {
            let row = Ending::of(lease, outcome, now);
            sql.push(if n == 0 { "(" } else { ", (" });
            sql.push_bind(lease.link.incident_id).push(", ");
            sql.push_bind(lease.link.integration_id).push(", ");
            sql.push_bind(&lease.owner).push(", ");
            sql.push_bind(row.kind).push(", ");
            sql.push_bind(row.sys_id).push(", ");
            sql.push_bind(row.number).push(", ");
            sql.push_bind(row.servicenow_state).push(", ");
            sql.push_bind(row.pushed).push(", ");
            sql.push_bind(lease.rev).push(", ");
            sql.push_bind(row.at).push(", ");
            sql.push_bind(row.error).push(", ");
            sql.push_bind(row.unsure).push(")");
        }
        sql.push(") ");
        sql.push(UPDATE);
        for row in tx.fetch_all(sql).await? {
            written.insert(rows::link_key(&row)?);
        }
    }
    Ok(written)
}

/// What one outcome sets, as the values row of [`complete_links`].
struct Ending<'a> {
    kind: &'static str,
    sys_id: Option<&'a str>,
    number: Option<&'a str>,
    servicenow_state: Option<&'a str>,
    pushed: Option<String>,
    at: DateTime<Utc>,
    error: Option<&'a str>,
    unsure: bool,
}

impl<'a> Ending<'a> {
    fn of(lease: &Lease, outcome: &'a LeaseOutcome, now: DateTime<Utc>) -> Ending<'a> {
        let row = |kind| Ending {
            kind,
            sys_id: None,
            number: None,
            servicenow_state: None,
            pushed: None,
            at: now,
            error: None,
            unsure: false,
        };
        match outcome {
            LeaseOutcome::Synced {
                sys_id,
                number,
                sent,
                servicenow_state,
            } => {
                let mut pushed = lease.link.pushed.clone();
                pushed.extend(sent.iter().map(|(k, v)| (k.clone(), v.clone())));
                Ending {
                    sys_id: Some(sys_id),
                    number: Some(number),
                    servicenow_state: servicenow_state.as_deref(),
                    pushed: Some(rows::to_json(&pushed)),
                    ..row("synced")
                }
            }
            LeaseOutcome::UpToDate => row("up_to_date"),
            // What an ambiguous create sent becomes `pushed`, so the record a lookup
            // finds later is diffed against it.
            LeaseOutcome::Retry {
                at,
                error,
                create_unsure,
                unsure_sent,
            } => Ending {
                at: *at,
                error: Some(error),
                unsure: *create_unsure,
                pushed: create_unsure.then(|| rows::to_json(unsure_sent)),
                ..row("retry")
            },
            LeaseOutcome::Park { error } => Ending {
                error: Some(error),
                ..row("park")
            },
            LeaseOutcome::Release => row("release"),
        }
    }
}

pub async fn next_due_at<D: Dialect>(store: &SqlStore<D>) -> Result<Option<DateTime<Utc>>> {
    let greatest = D::GREATEST;
    let row = store
        .db
        .read_optional(Sql::new(format!(
            // Integrations first (CROSS JOIN keeps SQLite to that order; PostgreSQL plans
            // by its statistics): a failing integration's backlog is never read.
            "SELECT MIN({greatest}(l.next_attempt_at, l.lease_until, i.paused_until)) AS due \
             FROM integrations i CROSS JOIN links l \
             WHERE l.integration_id = i.id AND l.state IN ('pending', 'retrying') \
               AND i.failing IS NULL"
        )))
        .await?;
    Ok(match row {
        Some(row) => row.opt_int("due")?.map(rows::time),
        None => None,
    })
}
