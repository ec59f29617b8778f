//! Incidents and their timelines. Every change commits together with the link bumps it
//! causes.

use chrono::{DateTime, Utc};
use snowbound_core::{Incident, TimelineEntry};
use uuid::Uuid;

use super::dialect::{Dialect, WriteTx};
use super::statement::Sql;
use super::{found, links, rows, SqlStore};
use crate::types::{IncidentFilter, NewLink};
use crate::{Result, StoreError};

pub async fn create_incident<D: Dialect>(
    store: &SqlStore<D>,
    incident: &Incident,
    timeline: &[TimelineEntry],
    new_links: &[NewLink],
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    insert(&mut tx, incident, timeline, new_links).await?;
    tx.commit().await
}

/// The incident with its first timeline entries and links, inside the caller's
/// transaction.
pub(super) async fn insert(
    tx: &mut impl WriteTx,
    incident: &Incident,
    timeline: &[TimelineEntry],
    new_links: &[NewLink],
) -> Result<()> {
    tx.execute(
        Sql::new(
            "INSERT INTO incidents (id, team_id, title, description, severity, status, \
             attributes, resolve_comment, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(incident.id)
        .bind(incident.team_id)
        .bind(&incident.title)
        .bind(&incident.description)
        .bind(incident.severity.as_str())
        .bind(incident.status.as_str())
        .bind(rows::to_json(&incident.attributes))
        .bind(&incident.resolve_comment)
        .bind(incident.created_at)
        .bind(incident.updated_at),
    )
    .await?;
    append_timeline(tx, incident.id, timeline).await?;
    for link in new_links {
        links::upsert(tx, link).await?;
    }
    Ok(())
}

pub(super) async fn append_timeline(
    tx: &mut impl WriteTx,
    incident_id: Uuid,
    entries: &[TimelineEntry],
) -> Result<()> {
    for entry in entries {
        tx.execute(
            Sql::new(
                "INSERT INTO timeline (incident_id, at, actor, kind, detail) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(incident_id)
            .bind(entry.at)
            .bind(&entry.actor)
            .bind(&entry.kind)
            .bind(&entry.detail),
        )
        .await?;
    }
    Ok(())
}

pub async fn update_incident<D: Dialect>(
    store: &SqlStore<D>,
    incident: &Incident,
    expected_updated_at: DateTime<Utc>,
    timeline: &[TimelineEntry],
    new_links: &[NewLink],
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    update(&mut tx, incident, expected_updated_at, timeline, new_links).await?;
    tx.commit().await
}

/// [`update_incident`] inside the caller's transaction.
pub(super) async fn update(
    tx: &mut impl WriteTx,
    incident: &Incident,
    expected_updated_at: DateTime<Utc>,
    timeline: &[TimelineEntry],
    new_links: &[NewLink],
) -> Result<()> {
    // On PostgreSQL the row lock this UPDATE takes makes a concurrent writer on another
    // node wait, then re-check `updated_at` against our committed row: it gets Stale.
    let updated = tx
        .execute(
            Sql::new(
                "UPDATE incidents SET title = $1, description = $2, severity = $3, status = $4, \
                 attributes = $5, resolve_comment = $6, updated_at = $7 \
                 WHERE id = $8 AND updated_at = $9",
            )
            .bind(&incident.title)
            .bind(&incident.description)
            .bind(incident.severity.as_str())
            .bind(incident.status.as_str())
            .bind(rows::to_json(&incident.attributes))
            .bind(&incident.resolve_comment)
            .bind(incident.updated_at)
            .bind(incident.id)
            .bind(expected_updated_at),
        )
        .await?;
    if updated == 0 {
        let exists = tx
            .fetch_optional(Sql::new("SELECT id FROM incidents WHERE id = $1").bind(incident.id))
            .await?;
        return Err(match exists {
            Some(_) => StoreError::Stale,
            None => StoreError::NotFound,
        });
    }
    append_timeline(tx, incident.id, timeline).await?;
    links::bump_incident(tx, incident.id).await?;
    for link in new_links {
        links::upsert(tx, link).await?;
    }
    Ok(())
}

pub async fn get_incident<D: Dialect>(store: &SqlStore<D>, id: Uuid) -> Result<Incident> {
    let row = store
        .db
        .read_optional(Sql::new("SELECT * FROM incidents WHERE id = $1").bind(id))
        .await?;
    rows::incident(&found(row)?)
}

pub async fn list_incidents<D: Dialect>(
    store: &SqlStore<D>,
    filter: &IncidentFilter,
) -> Result<Vec<Incident>> {
    let mut sql = Sql::new("SELECT * FROM incidents WHERE 1 = 1");
    if let Some(teams) = &filter.team_ids {
        if teams.is_empty() {
            return Ok(Vec::new());
        }
        sql.push(" AND team_id").push_in(teams.iter().copied());
    }
    if let Some(status) = filter.status {
        sql.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(severity) = filter.severity {
        sql.push(" AND severity = ").push_bind(severity.as_str());
    }
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(filter.limit.unwrap_or(100)));
    let rows = store.db.read_all(sql).await?;
    rows.iter().map(rows::incident).collect()
}

pub async fn timeline<D: Dialect>(
    store: &SqlStore<D>,
    incident_id: Uuid,
) -> Result<Vec<TimelineEntry>> {
    let rows = store
        .db
        .read_all(
            Sql::new("SELECT * FROM timeline WHERE incident_id = $1 ORDER BY id").bind(incident_id),
        )
        .await?;
    rows.iter().map(rows::timeline_entry).collect()
}
