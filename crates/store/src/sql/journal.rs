//! Comments and the per-link journal of timeline entries written to ServiceNow.

use chrono::{DateTime, Utc};
use snowbound_core::mapping::JOURNAL_KINDS;
use snowbound_core::TimelineEntry;
use uuid::Uuid;

use super::dialect::{Dialect, SqlRow, WriteTx};
use super::statement::Sql;
use super::{found, incidents, links, rows, SqlStore};
use crate::journal::{JournalItem, JournalState};
use crate::types::Lease;
use crate::Result;

/// A comment is a timeline entry of kind `comment`; its links are bumped so the engine
/// writes it to each record's journal.
pub async fn add_comment<D: Dialect>(
    store: &SqlStore<D>,
    incident_id: Uuid,
    actor: &str,
    text: &str,
    at: DateTime<Utc>,
) -> Result<()> {
    found(
        store
            .db
            .read_optional(Sql::new("SELECT id FROM incidents WHERE id = $1").bind(incident_id))
            .await?,
    )?;
    let entry = TimelineEntry {
        at,
        actor: actor.to_owned(),
        kind: "comment".into(),
        detail: text.to_owned(),
    };
    let mut tx = store.db.begin().await?;
    incidents::append_timeline(&mut tx, incident_id, std::slice::from_ref(&entry)).await?;
    links::bump_incident(&mut tx, incident_id).await?;
    tx.commit().await
}

/// Entries of journaled kinds the link has not written yet, oldest first.
pub async fn journal_pending<D: Dialect>(
    store: &SqlStore<D>,
    incident_id: Uuid,
    integration_id: Uuid,
    limit: u32,
) -> Result<Vec<JournalItem>> {
    let mut sql = Sql::new(
        "SELECT t.id, t.at, t.actor, t.kind, t.detail, j.state FROM timeline t \
         LEFT JOIN link_journal j ON j.timeline_id = t.id AND j.incident_id = $1 \
           AND j.integration_id = $2 \
         WHERE t.incident_id = $1 AND (j.state IS NULL OR j.state <> 'written') AND t.kind",
    )
    .bind(incident_id)
    .bind(integration_id);
    sql.push_in(JOURNAL_KINDS);
    sql.push(" ORDER BY t.id LIMIT ")
        .push_bind(i64::from(limit));
    let rows = store.db.read_all(sql).await?;
    rows.iter()
        .map(|row| {
            Ok(JournalItem {
                timeline_id: row.int("id")?,
                entry: rows::timeline_entry(row)?,
                unsure: row.opt_text("state")?.is_some(),
            })
        })
        .collect()
}

/// Only while `lease` is held, like every write of a reconcile; false when it is not.
pub async fn mark_journal<D: Dialect>(
    store: &SqlStore<D>,
    lease: &Lease,
    timeline_id: i64,
    state: JournalState,
) -> Result<bool> {
    let mut tx = store.db.begin().await?;
    let written = tx
        .execute(
            Sql::new(
                "INSERT INTO link_journal (incident_id, integration_id, timeline_id, state, at) \
                 SELECT incident_id, integration_id, $3, $4, $5 FROM links \
                 WHERE incident_id = $1 AND integration_id = $2 AND lease_owner = $6 \
                 ON CONFLICT (incident_id, integration_id, timeline_id) \
                 DO UPDATE SET state = excluded.state, at = excluded.at",
            )
            .bind(lease.link.incident_id)
            .bind(lease.link.integration_id)
            .bind(timeline_id)
            .bind(state.as_str())
            .bind(Utc::now())
            .bind(&lease.owner),
        )
        .await?;
    tx.commit().await?;
    Ok(written > 0)
}
