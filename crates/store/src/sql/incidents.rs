//! Incidents and their timelines: the reads, and the single writes (their statements are
//! [`incident_writes`]'). Every change commits together with the link bumps it causes.

use chrono::{DateTime, Utc};
use snowbound_core::{Incident, TimelineEntry};
use uuid::Uuid;

use super::dialect::{Dialect, WriteTx};
use super::incident_writes::{self, IncidentRows};
use super::statement::Sql;
use super::{found, rows, SqlStore};
use crate::types::{IncidentFilter, NewLink, RoutingWrite};
use crate::Result;

pub async fn create_incident<D: Dialect>(
    store: &SqlStore<D>,
    incident: &Incident,
    timeline: &[TimelineEntry],
    new_links: &[NewLink],
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    incident_writes::insert(
        &mut tx,
        incident,
        timeline,
        new_links,
        &RoutingWrite::default(),
    )
    .await?;
    tx.commit().await
}

pub(super) async fn append_timeline(
    tx: &mut impl WriteTx,
    incident_id: Uuid,
    entries: &[TimelineEntry],
) -> Result<()> {
    let mut rows = IncidentRows::default();
    rows.append(incident_id, entries);
    rows.write(tx).await
}

pub async fn update_incident<D: Dialect>(
    store: &SqlStore<D>,
    incident: &Incident,
    expected_updated_at: DateTime<Utc>,
    timeline: &[TimelineEntry],
    new_links: &[NewLink],
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    let routing = RoutingWrite::default();
    incident_writes::update(
        &mut tx,
        incident,
        expected_updated_at,
        timeline,
        new_links,
        &routing,
    )
    .await??;
    tx.commit().await
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
    for text in &filter.title_contains {
        sql.push(" AND lower(title) LIKE lower(")
            .push_bind(like_pattern(text))
            .push(") ESCAPE '\\'");
    }
    for (key, value) in &filter.attributes {
        sql.push(" AND EXISTS (SELECT 1 FROM ")
            .push(D::ATTRIBUTE_PAIRS)
            .push(" WHERE key = ")
            .push_bind(key.as_str())
            .push(" AND value = ")
            .push_bind(value.as_str())
            .push(")");
    }
    // A row-value comparison, so both backends turn it into a range scan of the
    // (created_at, id) index rather than an OR of two conditions.
    if let Some(cursor) = &filter.before {
        sql.push(" AND (created_at, id) < (")
            .push_bind(cursor.created_at)
            .push(", ")
            .push_bind(cursor.id)
            .push(")");
    }
    sql.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .push_bind(i64::from(filter.limit.unwrap_or(100)));
    let rows = store.db.read_all(sql).await?;
    rows.iter().map(rows::incident).collect()
}

/// `%text%` for LIKE, with `\\`, `%` and `_` in `text` matching themselves.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
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

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_pattern_escapes_wildcards_and_the_escape() {
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
        assert_eq!(like_pattern(""), "%%");
    }
}
