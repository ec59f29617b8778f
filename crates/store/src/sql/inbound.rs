//! Inbound sync's durable state: the coalescing poke queue, per-source polls (both
//! leased like links) and per-link inbound state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use snowbound_core::inbound::LinkNote;
use snowbound_core::{FieldMap, IncidentStatus};
use uuid::Uuid;

use super::dialect::{Dialect, SqlRow, WriteTx};
use super::statement::Sql;
use super::{incident_writes, rows, SqlStore};
use crate::inbound::{
    AdoptRecord, InboundLink, InboundWrite, PokeLease, PokeOutcome, PollLease, PollResult,
    PollState, StandingNote,
};
use crate::types::RoutingWrite;
use crate::{Result, StoreError};

fn uuid(row: &impl SqlRow, column: &str) -> Result<Uuid> {
    let text = row.text(column)?;
    Uuid::parse_str(&text).map_err(|e| StoreError::Corrupt(format!("bad id `{text}`: {e}")))
}

fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("bad JSON column: {e}")))
}

fn poke(row: &impl SqlRow, owner: &str) -> Result<PokeLease> {
    Ok(PokeLease {
        owner: owner.to_owned(),
        source_id: uuid(row, "source_id")?,
        sys_id: row.text("sys_id")?,
        table: row.text("table_name")?,
        rev: row.int("rev")?,
        pokes: row.int("pokes")?,
        attempts: row.int("attempts")?,
    })
}

/// A poke for a record already waiting (or being read) raises its revision only: its
/// schedule stays, so a storm neither multiplies reads nor hurries a retry while
/// ServiceNow fails.
pub async fn enqueue_poke<D: Dialect>(
    store: &SqlStore<D>,
    source_id: Uuid,
    sys_id: &str,
    table: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    store
        .db
        .write(
            Sql::new(
                "INSERT INTO inbound_pokes (source_id, sys_id, table_name, next_attempt_at, \
                 created_at) VALUES ($1, $2, $3, $4, $4) \
                 ON CONFLICT (source_id, sys_id) DO UPDATE SET \
                 pokes = inbound_pokes.pokes + 1, rev = inbound_pokes.rev + 1, \
                 table_name = excluded.table_name",
            )
            .bind(source_id)
            .bind(sys_id)
            .bind(table)
            .bind(now),
        )
        .await?;
    Ok(())
}

pub async fn lease_due_pokes<D: Dialect>(
    store: &SqlStore<D>,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<PokeLease>> {
    // One statement, as for links: two nodes can never lease one poke.
    let skip_locked = D::SKIP_LOCKED;
    let rows = store
        .db
        .write_returning(
            Sql::new(format!(
                "WITH due AS ( \
                   SELECT l.source_id, l.sys_id FROM inbound_pokes l \
                   WHERE l.next_attempt_at <= $3 AND l.lease_until <= $3 \
                   ORDER BY l.next_attempt_at LIMIT $4 {skip_locked}) \
                 UPDATE inbound_pokes SET lease_owner = $1, lease_until = $2 \
                 FROM due WHERE inbound_pokes.source_id = due.source_id \
                   AND inbound_pokes.sys_id = due.sys_id \
                 RETURNING *"
            ))
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(i64::from(limit)),
        )
        .await?;
    let mut leases = rows
        .iter()
        .map(|row| poke(row, owner))
        .collect::<Result<Vec<_>>>()?;
    leases.sort_by(|a, b| (a.source_id, &a.sys_id).cmp(&(b.source_id, &b.sys_id)));
    Ok(leases)
}

pub async fn complete_poke<D: Dialect>(
    store: &SqlStore<D>,
    lease: &PokeLease,
    outcome: &PokeOutcome,
    now: DateTime<Utc>,
) -> Result<bool> {
    match outcome {
        PokeOutcome::Read => {
            let mut tx = store.db.begin().await?;
            let deleted = tx
                .execute(
                    Sql::new(
                        "DELETE FROM inbound_pokes WHERE source_id = $1 AND sys_id = $2 \
                         AND lease_owner = $3 AND rev = $4",
                    )
                    .bind(lease.source_id)
                    .bind(&lease.sys_id)
                    .bind(&lease.owner)
                    .bind(lease.rev),
                )
                .await?;
            if deleted > 0 {
                tx.commit().await?;
                return Ok(true);
            }
            // Poked while being read: the read may predate the change, so read again now.
            let kept = tx
                .execute(
                    Sql::new(
                        "UPDATE inbound_pokes SET lease_owner = NULL, lease_until = 0, \
                         attempts = 0, last_error = NULL, next_attempt_at = $1 \
                         WHERE source_id = $2 AND sys_id = $3 AND lease_owner = $4",
                    )
                    .bind(now)
                    .bind(lease.source_id)
                    .bind(&lease.sys_id)
                    .bind(&lease.owner),
                )
                .await?;
            tx.commit().await?;
            Ok(kept > 0)
        }
        PokeOutcome::Retry { at, error } => {
            let updated = store
                .db
                .write(
                    Sql::new(
                        "UPDATE inbound_pokes SET lease_owner = NULL, lease_until = 0, \
                         attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
                         WHERE source_id = $3 AND sys_id = $4 AND lease_owner = $5",
                    )
                    .bind(error.as_str())
                    .bind(*at)
                    .bind(lease.source_id)
                    .bind(&lease.sys_id)
                    .bind(&lease.owner),
                )
                .await?;
            Ok(updated > 0)
        }
    }
}

pub async fn poke_rev<D: Dialect>(
    store: &SqlStore<D>,
    source_id: Uuid,
    sys_id: &str,
) -> Result<Option<i64>> {
    store
        .db
        .read_optional(
            Sql::new("SELECT rev FROM inbound_pokes WHERE source_id = $1 AND sys_id = $2")
                .bind(source_id)
                .bind(sys_id),
        )
        .await?
        .map(|row| row.int("rev"))
        .transpose()
}

pub async fn count_pokes<D: Dialect>(store: &SqlStore<D>, source_id: Uuid) -> Result<i64> {
    let row = store
        .db
        .read_optional(
            Sql::new("SELECT COUNT(*) AS n FROM inbound_pokes WHERE source_id = $1")
                .bind(source_id),
        )
        .await?;
    row.map_or(Ok(0), |row| row.int("n"))
}

pub async fn set_poll_schedule<D: Dialect>(
    store: &SqlStore<D>,
    source_id: Uuid,
    interval_ms: Option<i64>,
) -> Result<()> {
    store
        .db
        .write(
            Sql::new(
                "INSERT INTO inbound_polls (source_id, interval_ms) VALUES ($1, $2) \
                 ON CONFLICT (source_id) DO UPDATE SET interval_ms = excluded.interval_ms",
            )
            .bind(source_id)
            .bind(interval_ms),
        )
        .await?;
    Ok(())
}

fn poll_lease(row: &impl SqlRow, owner: &str) -> Result<PollLease> {
    Ok(PollLease {
        owner: owner.to_owned(),
        source_id: uuid(row, "source_id")?,
        watermark: row.opt_int("watermark")?.map(rows::time),
        interval_ms: row.opt_int("interval_ms")?.unwrap_or_default(),
    })
}

pub async fn lease_due_polls<D: Dialect>(
    store: &SqlStore<D>,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<PollLease>> {
    let skip_locked = D::SKIP_LOCKED;
    let rows = store
        .db
        .write_returning(
            Sql::new(format!(
                "WITH due AS ( \
                   SELECT l.source_id FROM inbound_polls l \
                   WHERE l.interval_ms IS NOT NULL AND l.next_poll_at <= $3 \
                     AND l.lease_until <= $3 \
                   ORDER BY l.next_poll_at LIMIT $4 {skip_locked}) \
                 UPDATE inbound_polls SET lease_owner = $1, lease_until = $2 \
                 FROM due WHERE inbound_polls.source_id = due.source_id \
                 RETURNING *"
            ))
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .bind(i64::from(limit)),
        )
        .await?;
    let mut leases = rows
        .iter()
        .map(|row| poll_lease(row, owner))
        .collect::<Result<Vec<_>>>()?;
    leases.sort_by_key(|l| l.source_id);
    Ok(leases)
}

pub async fn complete_poll<D: Dialect>(
    store: &SqlStore<D>,
    lease: &PollLease,
    result: &PollResult,
) -> Result<bool> {
    let greatest = D::GREATEST;
    let updated = store
        .db
        .write(
            Sql::new(format!(
                "UPDATE inbound_polls SET \
                 watermark = {greatest}(COALESCE(watermark, $2), COALESCE($2, watermark)), \
                 next_poll_at = CASE WHEN $5 THEN $1 ELSE $1 + COALESCE(interval_ms, 0) END, \
                 last_poll_at = $1, last_records = $3, last_error = $4, \
                 last_success_at = CASE WHEN $4 IS NULL THEN $1 ELSE last_success_at END, \
                 lease_owner = NULL, lease_until = 0 \
                 WHERE source_id = $6 AND lease_owner = $7"
            ))
            .bind(result.at)
            .bind(result.watermark.map(|w| w.timestamp_millis()))
            .bind(result.records_seen)
            .bind(result.error.as_deref())
            .bind(result.more)
            .bind(lease.source_id)
            .bind(&lease.owner),
        )
        .await?;
    Ok(updated > 0)
}

pub async fn poll_state<D: Dialect>(
    store: &SqlStore<D>,
    source_id: Uuid,
) -> Result<Option<PollState>> {
    let row = store
        .db
        .read_optional(Sql::new("SELECT * FROM inbound_polls WHERE source_id = $1").bind(source_id))
        .await?;
    row.map(|row| {
        Ok(PollState {
            source_id: uuid(&row, "source_id")?,
            interval_ms: row.opt_int("interval_ms")?,
            watermark: row.opt_int("watermark")?.map(rows::time),
            next_poll_at: rows::time(row.int("next_poll_at")?),
            last_poll_at: row.opt_int("last_poll_at")?.map(rows::time),
            last_records: row.opt_int("last_records")?,
            last_error: row.opt_text("last_error")?,
            last_success_at: row.opt_int("last_success_at")?.map(rows::time),
        })
    })
    .transpose()
}

pub async fn inbound_link<D: Dialect>(
    store: &SqlStore<D>,
    integration_id: Uuid,
    sys_id: &str,
) -> Result<Option<InboundLink>> {
    // Two incidents never adopt one record, but if history left two, the oldest holds it.
    let row = store
        .db
        .read_optional(
            Sql::new(
                "SELECT * FROM links WHERE integration_id = $1 AND sys_id = $2 \
                 ORDER BY created_at, incident_id LIMIT 1",
            )
            .bind(integration_id)
            .bind(sys_id),
        )
        .await?;
    row.map(|row| {
        Ok(InboundLink {
            link: rows::link(&row)?,
            applied_mod_count: row.opt_int("inbound_mod_count")?,
            notes: json(&row.text("inbound_notes")?)?,
        })
    })
    .transpose()
}

pub async fn apply_inbound<D: Dialect>(store: &SqlStore<D>, write: &InboundWrite) -> Result<()> {
    let mut tx = store.db.begin().await?;
    if let Some(change) = &write.change {
        if change.incident.id != write.incident_id {
            return Err(StoreError::Corrupt(
                "an inbound change must be about the link's incident".into(),
            ));
        }
        let newest_before = tx
            .fetch_optional(
                Sql::new("SELECT COALESCE(MAX(id), 0) AS id FROM timeline WHERE incident_id = $1")
                    .bind(write.incident_id),
            )
            .await?
            .map(|row| row.int("id"))
            .transpose()?
            .unwrap_or(0);
        incident_writes::update(
            &mut tx,
            &change.incident,
            change.expected_updated_at,
            &change.timeline,
            &[],
            // Resolved in ServiceNow within a rule's delay: the other held links go unsent.
            &RoutingWrite {
                drop_held_at: (change.incident.status == IncidentStatus::Resolved)
                    .then(chrono::Utc::now),
                ..RoutingWrite::default()
            },
        )
        .await??;
        // The record this change came from shows it already: its timeline entries are
        // not written back to that record's journal (other integrations' records get
        // them as usual).
        tx.execute(
            Sql::new(
                "INSERT INTO link_journal (incident_id, integration_id, timeline_id, state, at) \
                 SELECT $1, $2, id, 'written', $3 FROM timeline \
                 WHERE incident_id = $1 AND id > $4",
            )
            .bind(write.incident_id)
            .bind(write.integration_id)
            .bind(Utc::now())
            .bind(newest_before),
        )
        .await?;
    }
    // An UPDATE that changes nothing, for its row lock: on PostgreSQL a reconcile
    // completing on another node waits here (or we wait for it and read its `pushed`),
    // so the merge below never loses its write.
    let row = tx
        .fetch_optional(
            Sql::new(
                "UPDATE links SET rev = rev WHERE incident_id = $1 AND integration_id = $2 \
                 RETURNING pushed, inbound_notes",
            )
            .bind(write.incident_id)
            .bind(write.integration_id),
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    let mut pushed: FieldMap = json(&row.text("pushed")?)?;
    pushed.extend(write.pushed.clone());
    let mut notes: BTreeMap<String, LinkNote> = json(&row.text("inbound_notes")?)?;
    for (field, note) in &write.notes {
        match note {
            Some(note) => notes.insert(field.clone(), note.clone()),
            None => notes.remove(field),
        };
    }
    let greatest = D::GREATEST;
    let mut sql = Sql::new(format!(
        "UPDATE links SET pushed = $1, inbound_notes = $2, \
         inbound_mod_count = {greatest}(COALESCE(inbound_mod_count, $3), $3)"
    ))
    .bind(rows::to_json(&pushed))
    .bind(rows::to_json(&notes))
    .bind(write.mod_count);
    if let Some(reason) = &write.park {
        // Parked, not pending: nothing to send until a person decides (recreate).
        sql.push(", state = 'parked', last_error = ")
            .push_bind(reason.as_str());
    } else if write.reconcile {
        sql.push(
            ", rev = rev + 1, \
             next_attempt_at = CASE state WHEN 'synced' THEN ",
        )
        .push_bind(Utc::now())
        .push(
            " ELSE next_attempt_at END, \
             state = CASE state WHEN 'synced' THEN 'pending' ELSE state END",
        );
    }
    sql.push(" WHERE incident_id = ")
        .push_bind(write.incident_id)
        .push(" AND integration_id = ")
        .push_bind(write.integration_id);
    tx.execute(sql).await?;
    if write.reconcile {
        tx.links_due();
    }
    tx.commit().await
}

pub async fn adopt_record<D: Dialect>(store: &SqlStore<D>, adopt: &AdoptRecord) -> Result<()> {
    let mut tx = store.db.begin().await?;
    // Two nodes reading one new record at once: the second waits here, then finds the
    // first one's link and opens nothing.
    tx.lock_key(&format!(
        "snowbound.adopt:{}:{}",
        adopt.integration_id, adopt.sys_id
    ))
    .await?;
    let held = tx
        .fetch_optional(
            Sql::new("SELECT incident_id FROM links WHERE integration_id = $1 AND sys_id = $2")
                .bind(adopt.integration_id)
                .bind(adopt.sys_id.as_str()),
        )
        .await?;
    if held.is_some() {
        return Err(StoreError::Conflict { field: "sys_id" });
    }
    incident_writes::insert(
        &mut tx,
        &adopt.incident,
        &adopt.timeline,
        &[],
        &RoutingWrite::default(),
    )
    .await?;
    let now = Utc::now();
    tx.execute(
        Sql::new(
            "INSERT INTO links (incident_id, integration_id, sys_id, number, pushed, rev, \
             synced_rev, state, next_attempt_at, last_synced_at, created_at, \
             inbound_mod_count, adopted) \
             VALUES ($1, $2, $3, $4, $5, 1, 1, 'synced', $6, $6, $6, $7, $8)",
        )
        .bind(adopt.incident.id)
        .bind(adopt.integration_id)
        .bind(adopt.sys_id.as_str())
        .bind(adopt.number.as_str())
        .bind(rows::to_json(&adopt.pushed))
        .bind(now)
        .bind(adopt.mod_count)
        .bind(true),
    )
    .await?;
    tx.commit().await
}

pub async fn adopted_sys_ids<D: Dialect>(
    store: &SqlStore<D>,
    integration_id: Uuid,
    since: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<String>> {
    let rows = store
        .db
        .read_all(
            Sql::new(
                "SELECT l.sys_id FROM links l JOIN incidents i ON i.id = l.incident_id \
                 WHERE l.integration_id = $1 AND l.adopted = $2 AND l.sys_id IS NOT NULL \
                 AND (i.status <> 'resolved' OR i.updated_at >= $3) \
                 ORDER BY i.updated_at DESC LIMIT $4",
            )
            .bind(integration_id)
            .bind(true)
            .bind(since)
            .bind(i64::from(limit)),
        )
        .await?;
    rows.iter().map(|row| row.text("sys_id")).collect()
}

pub async fn standing_notes<D: Dialect>(
    store: &SqlStore<D>,
    integration_id: Uuid,
    limit: u32,
) -> Result<Vec<StandingNote>> {
    let rows = store
        .db
        .read_all(
            Sql::new(
                "SELECT l.incident_id, i.team_id, l.number, l.inbound_notes FROM links l \
                 JOIN incidents i ON i.id = l.incident_id \
                 WHERE l.integration_id = $1 AND l.inbound_notes <> '{}' \
                 ORDER BY i.updated_at DESC LIMIT $2",
            )
            .bind(integration_id)
            .bind(i64::from(limit)),
        )
        .await?;
    let mut notes = Vec::new();
    for row in &rows {
        let incident_id = uuid(row, "incident_id")?;
        let team_id = uuid(row, "team_id")?;
        let number = row.opt_text("number")?;
        let by_field: BTreeMap<String, LinkNote> = json(&row.text("inbound_notes")?)?;
        notes.extend(by_field.into_values().map(|note| StandingNote {
            incident_id,
            team_id,
            number: number.clone(),
            note,
        }));
    }
    Ok(notes)
}
