//! Incidents and their timelines. Every change commits together with the link bumps it
//! causes.

use chrono::{DateTime, Utc};
use snowbound_core::{Incident, TimelineEntry};
use uuid::Uuid;

use super::dialect::{Dialect, WriteTx};
use super::statement::Sql;
use super::{found, links, rows, rules, sources, SqlStore};
use crate::types::{IncidentFilter, IncidentWrite, NewLink, RoutingWrite, RuleFiring};
use crate::{Result, StoreError};

pub async fn create_incident<D: Dialect>(
    store: &SqlStore<D>,
    incident: &Incident,
    timeline: &[TimelineEntry],
    new_links: &[NewLink],
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    insert(
        &mut tx,
        incident,
        timeline,
        new_links,
        &RoutingWrite::default(),
    )
    .await?;
    tx.commit().await
}

/// The incident with its first timeline entries and links, inside the caller's
/// transaction.
pub(super) async fn insert(
    tx: &mut impl WriteTx,
    incident: &Incident,
    timeline: &[TimelineEntry],
    new_links: &[NewLink],
    routing: &RoutingWrite,
) -> Result<()> {
    tx.execute(
        Sql::new(
            "INSERT INTO incidents (id, team_id, title, description, severity, status, \
             attributes, resolve_comment, created_at, updated_at, source_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        .bind(incident.updated_at)
        .bind(incident.source_id),
    )
    .await?;
    append_timeline(tx, incident.id, timeline).await?;
    for link in new_links {
        links::upsert(tx, link, routing.hold.as_ref()).await?;
    }
    rules::insert_firings(tx, Some(incident.id), &routing.firings).await?;
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
    let routing = RoutingWrite::default();
    update(
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

/// The update inside the caller's transaction. The inner error is a refusal decided
/// before anything was written (`Stale`, `NotFound`), so the transaction stays usable;
/// the outer one is a database failure that spoils it.
pub(super) async fn update(
    tx: &mut impl WriteTx,
    incident: &Incident,
    expected_updated_at: DateTime<Utc>,
    timeline: &[TimelineEntry],
    new_links: &[NewLink],
    routing: &RoutingWrite,
) -> Result<Result<()>> {
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
        return Ok(Err(match exists {
            Some(_) => StoreError::Stale,
            None => StoreError::NotFound,
        }));
    }
    append_timeline(tx, incident.id, timeline).await?;
    if let Some(at) = routing.drop_held_at {
        drop_held(tx, incident, at).await?;
    }
    links::bump_incident(tx, incident.id).await?;
    for link in new_links {
        links::upsert(tx, link, routing.hold.as_ref()).await?;
    }
    rules::insert_firings(tx, Some(incident.id), &routing.firings).await?;
    Ok(Ok(()))
}

/// A resolve within a rule's delay: the held links go unsent, and the timeline and the
/// routing history say so.
async fn drop_held(tx: &mut impl WriteTx, incident: &Incident, at: DateTime<Utc>) -> Result<()> {
    for (integration, rule_id, rule_name) in links::drop_held(tx, incident.id, at).await? {
        let detail = format!("not sent to {integration}: resolved within the rule's delay");
        let entry = TimelineEntry {
            at,
            actor: format!("routing rule {rule_name}"),
            kind: "not_sent".into(),
            detail: detail.clone(),
        };
        append_timeline(tx, incident.id, std::slice::from_ref(&entry)).await?;
        let firing = RuleFiring {
            team_id: incident.team_id,
            rule_id,
            rule_name,
            incident_id: Some(incident.id),
            kind: "not_sent".into(),
            detail,
            at,
        };
        rules::insert_firings(tx, Some(incident.id), std::slice::from_ref(&firing)).await?;
    }
    Ok(())
}

/// Group commit: all of `writes` in one transaction, in an order that takes key locks
/// and row locks alike on every node (keyed creates by key, then updates by incident id,
/// then plain creates), so two nodes' batches cannot deadlock on each other. Each write
/// gets its own answer; a refused one (`Stale`, `NotFound`, `Conflict` on `dedup_key`)
/// wrote nothing and does not hold back the others.
pub async fn write_incidents<D: Dialect>(
    store: &SqlStore<D>,
    writes: &[IncidentWrite],
) -> Result<Vec<Result<()>>> {
    let mut order: Vec<usize> = (0..writes.len()).collect();
    order.sort_by(|&a, &b| lock_order(&writes[a]).cmp(&lock_order(&writes[b])));
    let mut answers: Vec<Option<Result<()>>> = (0..writes.len()).map(|_| None).collect();
    let mut tx = store.db.begin().await?;
    for index in order {
        let answer = match &writes[index] {
            IncidentWrite::Create {
                incident,
                timeline,
                links,
                dedup_key: None,
                routing,
            } => insert(&mut tx, incident, timeline, links, routing)
                .await
                .map(Ok)?,
            IncidentWrite::Create {
                incident,
                timeline,
                links,
                dedup_key: Some((source_id, key)),
                routing,
            } => {
                sources::insert_for_key(
                    &mut tx, *source_id, key, incident, timeline, links, routing,
                )
                .await?
            }
            IncidentWrite::Update {
                incident,
                expected_updated_at,
                timeline,
                new_links,
                routing,
            } => {
                update(
                    &mut tx,
                    incident,
                    *expected_updated_at,
                    timeline,
                    new_links,
                    routing,
                )
                .await?
            }
        };
        answers[index] = Some(answer);
    }
    tx.commit().await?;
    Ok(answers.into_iter().map(|a| a.unwrap_or(Ok(()))).collect())
}

fn lock_order(write: &IncidentWrite) -> (u8, Option<(Uuid, &str)>, Uuid) {
    match write {
        IncidentWrite::Create {
            dedup_key: Some((source_id, key)),
            incident,
            ..
        } => (0, Some((*source_id, key.as_str())), incident.id),
        IncidentWrite::Update { incident, .. } => (1, None, incident.id),
        IncidentWrite::Create { incident, .. } => (2, None, incident.id),
    }
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
