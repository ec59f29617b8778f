//! The store, written once for both backends and organised by entity. Each statement is
//! one SQL text; [`Dialect`] carries what SQLite and PostgreSQL do differently.

mod api_calls;
mod audit;
mod counts;
pub(crate) mod dialect;
mod inbound;
mod incident_writes;
mod incidents;
mod integrations;
mod journal;
mod links;
mod login_failures;
pub(crate) mod meta;
mod rows;
mod rules;
mod script;
mod sources;
pub(crate) mod statement;
mod store;
mod teams;
mod tokens;
mod users;

pub use dialect::Dialect;

use crate::crypto::SecretBox;
use crate::{Result, StoreError};

/// The [`crate::Store`] over one backend `D`: [`crate::SqliteStore`] or
/// [`crate::PostgresStore`].
#[derive(Clone)]
pub struct SqlStore<D> {
    pub(crate) db: D,
    pub(crate) secrets: SecretBox,
}

impl<D> SqlStore<D> {
    /// The backend: its pools, for what only that backend offers.
    pub fn backend(&self) -> &D {
        &self.db
    }
}

/// A unique violation becomes [`StoreError::Conflict`] on `field`.
fn conflict_on(field: &'static str) -> impl FnOnce(StoreError) -> StoreError {
    move |e| match &e {
        StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            StoreError::Conflict { field }
        }
        _ => e,
    }
}

fn found<T>(row: Option<T>) -> Result<T> {
    row.ok_or(StoreError::NotFound)
}

/// A write that must hit a row, else the row is not there.
fn touched(affected: u64) -> Result<()> {
    if affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}
