//! Teams.

use snowbound_core::Team;
use uuid::Uuid;

use super::dialect::Dialect;
use super::statement::Sql;
use super::{conflict_on, found, rows, SqlStore};
use crate::Result;

pub async fn create_team<D: Dialect>(store: &SqlStore<D>, team: &Team) -> Result<()> {
    store
        .db
        .write(
            Sql::new("INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(team.id)
                .bind(&team.name)
                .bind(team.created_at),
        )
        .await
        .map_err(conflict_on("name"))?;
    Ok(())
}

pub async fn list_teams<D: Dialect>(store: &SqlStore<D>) -> Result<Vec<Team>> {
    let rows = store
        .db
        .read_all(Sql::new("SELECT * FROM teams ORDER BY name"))
        .await?;
    rows.iter().map(rows::team).collect()
}

pub async fn get_team<D: Dialect>(store: &SqlStore<D>, id: Uuid) -> Result<Team> {
    let row = store
        .db
        .read_optional(Sql::new("SELECT * FROM teams WHERE id = $1").bind(id))
        .await?;
    rows::team(&found(row)?)
}
