//! Routing rules: a team's ordered conditions and actions, and the routing history
//! (`rule_firings`), which also says which rules fired for an incident already.

use std::collections::BTreeSet;

use snowbound_core::routing::RoutingRule;
use uuid::Uuid;

use super::dialect::{Dialect, SqlRow, WriteTx};
use super::script::Script;
use super::statement::Sql;
use super::{found, incident_writes, rows, touched, SqlStore};
use crate::types::RuleFiring;
use crate::{Result, StoreError};

pub async fn create_routing_rule<D: Dialect>(
    store: &SqlStore<D>,
    rule: &RoutingRule,
) -> Result<()> {
    store
        .db
        .write(
            Sql::new(
                "INSERT INTO routing_rules (id, team_id, name, position, conditions, actions, \
                 created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(rule.id)
            .bind(rule.team_id)
            .bind(&rule.name)
            .bind(rule.position)
            .bind(rows::to_json(&rule.when))
            .bind(rows::to_json(&rule.then))
            .bind(rule.created_at)
            .bind(rule.updated_at),
        )
        .await?;
    Ok(())
}

pub async fn get_routing_rule<D: Dialect>(store: &SqlStore<D>, id: Uuid) -> Result<RoutingRule> {
    let row = store
        .db
        .read_optional(Sql::new("SELECT * FROM routing_rules WHERE id = $1").bind(id))
        .await?;
    rows::rule(&found(row)?)
}

pub async fn list_routing_rules<D: Dialect>(
    store: &SqlStore<D>,
    team_ids: Option<&[Uuid]>,
) -> Result<Vec<RoutingRule>> {
    let mut sql = Sql::new("SELECT * FROM routing_rules WHERE 1 = 1");
    if let Some(teams) = team_ids {
        sql.push(" AND team_id").push_in(teams.iter().copied());
    }
    sql.push(" ORDER BY team_id, position, created_at, id");
    let rows = store.db.read_all(sql).await?;
    rows.iter().map(rows::rule).collect()
}

pub async fn update_routing_rule<D: Dialect>(
    store: &SqlStore<D>,
    rule: &RoutingRule,
) -> Result<()> {
    let updated = store
        .db
        .write(
            Sql::new(
                "UPDATE routing_rules SET name = $1, position = $2, conditions = $3, \
                 actions = $4, updated_at = $5 WHERE id = $6",
            )
            .bind(&rule.name)
            .bind(rule.position)
            .bind(rows::to_json(&rule.when))
            .bind(rows::to_json(&rule.then))
            .bind(rule.updated_at)
            .bind(rule.id),
        )
        .await?;
    touched(updated)
}

pub async fn delete_routing_rule<D: Dialect>(store: &SqlStore<D>, id: Uuid) -> Result<()> {
    let deleted = store
        .db
        .write(Sql::new("DELETE FROM routing_rules WHERE id = $1").bind(id))
        .await?;
    touched(deleted)
}

pub async fn reorder_routing_rules<D: Dialect>(
    store: &SqlStore<D>,
    team_id: Uuid,
    rule_ids: &[Uuid],
) -> Result<()> {
    let mut tx = store.db.begin().await?;
    // Rules created or deleted meanwhile on another node wait for this lock, so the set
    // compared below is the set renumbered.
    tx.lock_key(&format!("snowbound.routing_rules:{team_id}"))
        .await?;
    let current: BTreeSet<Uuid> = tx
        .fetch_all(Sql::new("SELECT id FROM routing_rules WHERE team_id = $1").bind(team_id))
        .await?
        .iter()
        .map(|row| rows::parse_uuid(&row.text("id")?))
        .collect::<Result<_>>()?;
    let wanted: BTreeSet<Uuid> = rule_ids.iter().copied().collect();
    if wanted.len() != rule_ids.len() || wanted != current {
        return Err(StoreError::Conflict { field: "rule_ids" });
    }
    let now = chrono::Utc::now();
    for (position, id) in rule_ids.iter().enumerate() {
        tx.execute(
            Sql::new(
                "UPDATE routing_rules SET position = $1, updated_at = $2 \
                 WHERE id = $3 AND position <> $1",
            )
            .bind(position as i64)
            .bind(now)
            .bind(*id),
        )
        .await?;
    }
    tx.commit().await
}

pub async fn fired_rules<D: Dialect>(store: &SqlStore<D>, incident_id: Uuid) -> Result<Vec<Uuid>> {
    let rows = store
        .db
        .read_all(
            Sql::new(
                "SELECT DISTINCT rule_id FROM rule_firings \
                 WHERE incident_id = $1 AND kind = 'fired'",
            )
            .bind(incident_id),
        )
        .await?;
    rows.iter()
        .map(|row| rows::parse_uuid(&row.text("rule_id")?))
        .collect()
}

pub async fn record_firings<D: Dialect>(store: &SqlStore<D>, firings: &[RuleFiring]) -> Result<()> {
    if firings.is_empty() {
        return Ok(());
    }
    let mut tx = store.db.begin().await?;
    let firings: Vec<_> = firings.iter().map(|f| (None, f)).collect();
    let mut script = Script::for_tx(&tx);
    incident_writes::insert_firings(&mut script, &firings);
    script.run(&mut tx).await?;
    tx.commit().await
}

pub async fn routing_history<D: Dialect>(
    store: &SqlStore<D>,
    team_ids: Option<&[Uuid]>,
    limit: u32,
) -> Result<Vec<RuleFiring>> {
    let mut sql = Sql::new("SELECT * FROM rule_firings WHERE 1 = 1");
    if let Some(teams) = team_ids {
        if teams.is_empty() {
            return Ok(Vec::new());
        }
        sql.push(" AND team_id").push_in(teams.iter().copied());
    }
    sql.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit));
    let rows = store.db.read_all(sql).await?;
    rows.iter().map(rows::firing).collect()
}
