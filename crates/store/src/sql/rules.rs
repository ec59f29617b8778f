//! Routing rules: a team's ordered conditions and what they forward or exclude.

use snowbound_core::routing::RoutingRule;
use uuid::Uuid;

use super::dialect::Dialect;
use super::statement::Sql;
use super::{found, rows, touched, SqlStore};
use crate::Result;

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
