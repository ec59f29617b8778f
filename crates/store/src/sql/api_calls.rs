//! The API call log: one table every node appends to, so a user sees one log whichever
//! node made the calls.

use uuid::Uuid;

use super::dialect::{Dialect, WriteTx};
use super::script::Script;
use super::statement::Sql;
use super::{rows, SqlStore};
use crate::types::{ApiCallFilter, ApiCallRecord};
use crate::{Result, API_CALLS_KEPT};

pub async fn record_api_calls<D: Dialect>(
    store: &SqlStore<D>,
    integration_id: Uuid,
    incident_id: Option<Uuid>,
    calls: &[ApiCallRecord],
) -> Result<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let rows: Vec<LoggedCall> = calls
        .iter()
        .map(|call| (integration_id, incident_id, call))
        .collect();
    let mut tx = store.db.begin().await?;
    insert(&mut tx, &rows).await?;
    prune(&mut tx, integration_id).await?;
    tx.commit().await
}

/// One row of the log: the integration and incident a call was made for.
pub(super) type LoggedCall<'a> = (Uuid, Option<Uuid>, &'a ApiCallRecord);

/// Appends calls of any integrations and incidents with as few statements as the bind
/// limit allows: a completion batch logs all its reconciles' calls in one or two.
pub(super) async fn insert(tx: &mut impl WriteTx, rows: &[LoggedCall<'_>]) -> Result<()> {
    let mut script = Script::for_tx(tx);
    script.insert_rows(
        "INSERT INTO api_calls (integration_id, incident_id, at, method, url, status, \
         duration_ms, request_body, response_body, error) VALUES ",
        "",
        rows,
        |&(integration_id, incident_id, call)| {
            vec![
                integration_id.into(),
                incident_id.into(),
                call.at.into(),
                (&call.method).into(),
                (&call.url).into(),
                call.status.map(i64::from).into(),
                (call.duration_ms as i64).into(),
                (&call.request_body).into(),
                (&call.response_body).into(),
                (&call.error).into(),
            ]
        },
    );
    script.run(tx).await
}

/// Keeps the newest `API_CALLS_KEPT` calls of one integration. Several PostgreSQL nodes
/// log to one integration at once; two pruners deleting the same old rows would wait on
/// each other (and could deadlock, scanning in different orders), so only the one
/// holding the integration's key prunes — the next call prunes whatever the others
/// left, and the log overshoots its size by a few rows at most.
pub(super) async fn prune(tx: &mut impl WriteTx, integration_id: Uuid) -> Result<()> {
    if tx
        .try_lock_key(&format!("snowbound.api_calls:{integration_id}"))
        .await?
    {
        tx.execute(
            Sql::new(
                "DELETE FROM api_calls WHERE integration_id = $1 AND id <= \
                 (SELECT id FROM api_calls WHERE integration_id = $1 \
                  ORDER BY id DESC LIMIT 1 OFFSET $2)",
            )
            .bind(integration_id)
            .bind(API_CALLS_KEPT),
        )
        .await?;
    }
    Ok(())
}

pub async fn list_api_calls<D: Dialect>(
    store: &SqlStore<D>,
    filter: &ApiCallFilter,
) -> Result<Vec<ApiCallRecord>> {
    let mut sql = Sql::new("SELECT * FROM api_calls WHERE 1 = 1");
    if let Some(id) = filter.integration_id {
        sql.push(" AND integration_id = ").push_bind(id);
    }
    if let Some(id) = filter.incident_id {
        sql.push(" AND incident_id = ").push_bind(id);
    }
    if let Some(teams) = &filter.visible_team_ids {
        sql.push(" AND (");
        if filter.include_without_incident {
            sql.push("incident_id IS NULL OR ");
        }
        sql.push("incident_id IN (SELECT id FROM incidents WHERE team_id IN (");
        if teams.is_empty() {
            sql.push("NULL");
        }
        for (i, team) in teams.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push_bind(*team);
        }
        sql.push(")))");
    }
    match filter.status_class {
        Some(0) => {
            sql.push(" AND status IS NULL");
        }
        Some(class) => {
            sql.push(" AND status >= ")
                .push_bind(i64::from(class) * 100)
                .push(" AND status < ")
                .push_bind(i64::from(class) * 100 + 100);
        }
        None => {}
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(filter.limit.unwrap_or(API_CALLS_KEPT as u32)));
    let rows = store.db.read_all(sql).await?;
    rows.iter().map(rows::api_call).collect()
}
