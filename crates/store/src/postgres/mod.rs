//! The PostgreSQL backend: several Snowbound nodes sharing one database. Single
//! statements are atomic under READ COMMITTED; leases skip rows other nodes are leasing
//! (`FOR UPDATE SKIP LOCKED`), races a check-then-insert would lose are serialised by
//! advisory locks, and every transaction that makes links due says so with `pg_notify`,
//! so idle nodes wake at once (polling is the fallback).

mod listen;
mod setup;

use std::sync::Arc;

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Transaction};

use crate::sql::dialect::{Dialect, SqlRow, WriteTx};
use crate::sql::statement::Sql;
use crate::sql::SqlStore;
use crate::Result;

pub use listen::Heard;
pub use setup::Migrations;

/// The store on a PostgreSQL database (or schema).
pub type PostgresStore = SqlStore<PostgresBackend>;

/// The channel every node listens on. A notification without payload says "links may be
/// due", and the woken engine asks the database what; one with a payload is a message of
/// [`crate::Store::announce`] (what changed, for the nodes' caches).
pub const CHANNEL: &str = "snowbound_links";

/// PostgreSQL's "undefined_table": the schema has not been migrated yet.
const UNDEFINED_TABLE: &str = "42P01";

#[derive(Clone)]
pub struct PostgresBackend {
    pool: PgPool,
    /// Where this deployment's change notifications go; see [`channel_for`].
    channel: Arc<str>,
}

impl PostgresBackend {
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// Channels are per database, not per schema: a Snowbound kept in another schema than
/// `public` (a second deployment, a test) gets a channel of its own, so deployments
/// sharing a database do not wake each other.
fn channel_for(schema: &str) -> String {
    if schema == "public" {
        CHANNEL.to_owned()
    } else {
        format!("{CHANNEL}_{schema}")
    }
}

impl Dialect for PostgresBackend {
    type Row = PgRow;
    type Tx = PgTx;

    const GREATEST: &'static str = "GREATEST";
    const SKIP_LOCKED: &'static str = "FOR UPDATE OF l SKIP LOCKED";
    const LOCK_ROWS: &'static str = "FOR UPDATE";
    const ATTRIBUTE_PAIRS: &'static str = "json_each_text(incidents.attributes::json)";

    async fn read_all(&self, sql: Sql<'_>) -> Result<Vec<PgRow>> {
        Ok(sql.query::<Postgres>().fetch_all(&self.pool).await?)
    }

    async fn read_optional(&self, sql: Sql<'_>) -> Result<Option<PgRow>> {
        Ok(sql.query::<Postgres>().fetch_optional(&self.pool).await?)
    }

    async fn write(&self, sql: Sql<'_>) -> Result<u64> {
        Ok(sql
            .query::<Postgres>()
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn write_returning(&self, sql: Sql<'_>) -> Result<Vec<PgRow>> {
        Ok(sql.query::<Postgres>().fetch_all(&self.pool).await?)
    }

    async fn begin(&self) -> Result<PgTx> {
        Ok(PgTx {
            tx: self.pool.begin().await?,
            channel: Arc::clone(&self.channel),
            links_due: false,
        })
    }

    fn is_undefined_table(error: &sqlx::Error) -> bool {
        matches!(error, sqlx::Error::Database(db) if db.code().as_deref() == Some(UNDEFINED_TABLE))
    }

    async fn announce(&self, message: &str) -> Result<()> {
        self.write(
            Sql::new("SELECT pg_notify($1, $2)")
                .bind(&*self.channel)
                .bind(message),
        )
        .await?;
        Ok(())
    }
}

pub struct PgTx {
    tx: Transaction<'static, Postgres>,
    channel: Arc<str>,
    links_due: bool,
}

impl WriteTx for PgTx {
    type Row = PgRow;
    const MULTI_STATEMENT: bool = false;
    const LOCKS_KEYS: bool = true;

    async fn execute(&mut self, sql: Sql<'_>) -> Result<u64> {
        Ok(sql
            .query::<Postgres>()
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }

    async fn fetch_all(&mut self, sql: Sql<'_>) -> Result<Vec<PgRow>> {
        Ok(sql.query::<Postgres>().fetch_all(&mut *self.tx).await?)
    }

    async fn fetch_optional(&mut self, sql: Sql<'_>) -> Result<Option<PgRow>> {
        Ok(sql
            .query::<Postgres>()
            .fetch_optional(&mut *self.tx)
            .await?)
    }

    /// Under READ COMMITTED two transactions checking the same thing would both pass; a
    /// transaction-scoped advisory lock on the key makes the second wait for the first.
    async fn lock_key(&mut self, key: &str) -> Result<()> {
        self.execute(Sql::new("SELECT pg_advisory_xact_lock(hashtext($1)::bigint)").bind(key))
            .await?;
        Ok(())
    }

    async fn try_lock_key(&mut self, key: &str) -> Result<bool> {
        let row = self
            .fetch_optional(
                Sql::new("SELECT pg_try_advisory_xact_lock(hashtext($1)::bigint) AS locked")
                    .bind(key),
            )
            .await?;
        Ok(match row {
            Some(row) => row.flag("locked")?,
            None => false,
        })
    }

    fn links_due(&mut self) {
        self.links_due = true;
    }

    /// PostgreSQL delivers notifications at commit and drops them on rollback, so the
    /// other nodes hear of the links exactly when they can lease them.
    async fn commit(mut self) -> Result<()> {
        if self.links_due {
            let channel = Arc::clone(&self.channel);
            self.execute(Sql::new("SELECT pg_notify($1, '')").bind(&*channel))
                .await?;
        }
        Ok(self.tx.commit().await?)
    }
}
