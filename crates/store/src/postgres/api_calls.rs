//! The API call log: one table every node appends to, so a user sees one log whichever
//! node made the calls.

use sqlx::PgPool;
use uuid::Uuid;

use super::rows::{self, ms};
use crate::types::{ApiCallFilter, ApiCallRecord};
use crate::{Result, API_CALLS_KEPT};

pub async fn record(
    pool: &PgPool,
    integration_id: Uuid,
    incident_id: Option<Uuid>,
    calls: &[ApiCallRecord],
) -> Result<()> {
    if calls.is_empty() {
        return Ok(());
    }
    let integration = integration_id.to_string();
    let mut tx = pool.begin().await?;
    let mut insert = sqlx::QueryBuilder::new(
        "INSERT INTO api_calls (integration_id, incident_id, at, method, url, status, duration_ms, \
         request_body, response_body, error) ",
    );
    insert.push_values(calls, |mut row, call| {
        row.push_bind(&integration)
            .push_bind(incident_id.map(|id| id.to_string()))
            .push_bind(ms(call.at))
            .push_bind(&call.method)
            .push_bind(&call.url)
            .push_bind(call.status.map(i64::from))
            .push_bind(call.duration_ms as i64)
            .push_bind(&call.request_body)
            .push_bind(&call.response_body)
            .push_bind(&call.error);
    });
    insert.build().execute(&mut *tx).await?;
    // Several nodes log to one integration at once. Two pruners deleting the same old
    // rows would wait on each other (and could deadlock, scanning in different orders),
    // so only the node holding this integration's advisory lock prunes; the others skip
    // it — the next call prunes whatever they left, and the log overshoots its size by
    // a few rows at most.
    let pruner: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext($1)::bigint)")
        .bind(format!("snowbound.api_calls:{integration}"))
        .fetch_one(&mut *tx)
        .await?;
    if pruner {
        sqlx::query(
            "DELETE FROM api_calls WHERE integration_id = $1 AND id <= \
             (SELECT id FROM api_calls WHERE integration_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(&integration)
        .bind(API_CALLS_KEPT)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn list(pool: &PgPool, filter: &ApiCallFilter) -> Result<Vec<ApiCallRecord>> {
    let mut query = sqlx::QueryBuilder::new("SELECT * FROM api_calls WHERE 1 = 1");
    if let Some(id) = filter.integration_id {
        query
            .push(" AND integration_id = ")
            .push_bind(id.to_string());
    }
    if let Some(id) = filter.incident_id {
        query.push(" AND incident_id = ").push_bind(id.to_string());
    }
    if let Some(teams) = &filter.visible_team_ids {
        query.push(" AND (");
        if filter.include_without_incident {
            query.push("incident_id IS NULL OR ");
        }
        query.push("incident_id IN (SELECT id FROM incidents WHERE team_id IN (");
        if teams.is_empty() {
            query.push("NULL");
        }
        let mut listed = query.separated(", ");
        for team in teams {
            listed.push_bind(team.to_string());
        }
        query.push(")))");
    }
    match filter.status_class {
        Some(0) => {
            query.push(" AND status IS NULL");
        }
        Some(class) => {
            query
                .push(" AND status >= ")
                .push_bind(i64::from(class) * 100)
                .push(" AND status < ")
                .push_bind(i64::from(class) * 100 + 100);
        }
        None => {}
    }
    query
        .push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(filter.limit.unwrap_or(API_CALLS_KEPT as u32)));
    let rows = query.build().fetch_all(pool).await?;
    rows.iter().map(rows::api_call).collect()
}
