//! The audit trail: one table every node appends to, kept to the newest
//! [`crate::AUDIT_EVENTS_KEPT`] events. What an event holds (secrets already masked) is
//! `core::audit`.

use snowbound_core::audit::{AuditEvent, NewAuditEvent};

use super::dialect::{Dialect, SqlRow, WriteTx};
use super::statement::Sql;
use super::{rows, SqlStore};
use crate::types::AuditFilter;
use crate::{Result, AUDIT_EVENTS_KEPT};

pub async fn record_audit<D: Dialect>(store: &SqlStore<D>, event: &NewAuditEvent) -> Result<()> {
    let mut tx = store.db.begin().await?;
    tx.execute(
        Sql::new(
            "INSERT INTO audit_events (at, actor, object_type, object_id, action, changes) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(event.at)
        .bind(event.actor.as_str())
        .bind(event.object_type)
        .bind(event.object_id.as_str())
        .bind(event.action)
        .bind(event.changes.to_string()),
    )
    .await?;
    // Pruned on insert, so the table never holds more than a few rows over its bound.
    // Two PostgreSQL nodes pruning the same rows would wait on each other: only the
    // holder of the key prunes, and the next insert catches up on what it skipped.
    if tx.try_lock_key("snowbound.audit_events").await? {
        tx.execute(
            Sql::new(
                "DELETE FROM audit_events WHERE id <= \
                 (SELECT id FROM audit_events ORDER BY id DESC LIMIT 1 OFFSET $1)",
            )
            .bind(AUDIT_EVENTS_KEPT),
        )
        .await?;
    }
    tx.commit().await
}

pub async fn list_audit<D: Dialect>(
    store: &SqlStore<D>,
    filter: &AuditFilter,
) -> Result<Vec<AuditEvent>> {
    let mut sql = Sql::new("SELECT * FROM audit_events WHERE 1 = 1");
    if let Some(object_type) = &filter.object_type {
        sql.push(" AND object_type = ").push_bind(object_type);
    }
    if let Some(object_id) = &filter.object_id {
        sql.push(" AND object_id = ").push_bind(object_id);
    }
    if let Some(before) = filter.before {
        sql.push(" AND id < ").push_bind(before);
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(filter.limit.unwrap_or(100)));
    let rows = store.db.read_all(sql).await?;
    rows.iter().map(audit_event).collect()
}

fn audit_event(row: &impl SqlRow) -> Result<AuditEvent> {
    Ok(AuditEvent {
        id: row.int("id")?,
        at: rows::time(row.int("at")?),
        actor: row.text("actor")?,
        object_type: row.text("object_type")?,
        object_id: row.text("object_id")?,
        action: row.text("action")?,
        changes: serde_json::from_str(&row.text("changes")?)
            .map_err(|e| crate::StoreError::Corrupt(format!("bad JSON column: {e}")))?,
    })
}
