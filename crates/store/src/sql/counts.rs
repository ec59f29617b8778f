//! Row counts by state for the metrics gauges: two grouped counts, read on every scrape,
//! so no row is fetched.

use super::dialect::{Dialect, SqlRow};
use super::statement::Sql;
use super::SqlStore;
use crate::types::{LinkCount, LinkState, StateCounts};
use crate::{Result, StoreError};

pub async fn state_counts<D: Dialect>(store: &SqlStore<D>) -> Result<StateCounts> {
    let incidents = store
        .db
        .read_all(Sql::new(
            "SELECT status, COUNT(*) AS n FROM incidents GROUP BY status ORDER BY status",
        ))
        .await?;
    let links = store
        .db
        .read_all(Sql::new(
            "SELECT integration_id, state, COUNT(*) AS n FROM links \
             GROUP BY integration_id, state ORDER BY integration_id, state",
        ))
        .await?;
    Ok(StateCounts {
        incidents: incidents
            .iter()
            .map(|row| {
                let status = row.text("status")?;
                let status = status
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("bad incident status `{status}`")))?;
                Ok((status, row.int("n")?))
            })
            .collect::<Result<_>>()?,
        links: links
            .iter()
            .map(|row| {
                let state = row.text("state")?;
                let id = row.text("integration_id")?;
                Ok(LinkCount {
                    integration_id: uuid::Uuid::parse_str(&id)
                        .map_err(|e| StoreError::Corrupt(format!("bad id `{id}`: {e}")))?,
                    state: LinkState::parse(&state)
                        .ok_or_else(|| StoreError::Corrupt(format!("bad link state `{state}`")))?,
                    count: row.int("n")?,
                })
            })
            .collect::<Result<_>>()?,
    })
}
