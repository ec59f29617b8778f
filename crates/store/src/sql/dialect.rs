//! The seam between the shared store and a database: how statements reach it, and the
//! handful of things SQLite and PostgreSQL really do differently. Everything else is one
//! text in `sql/`.

use std::future::Future;

use sqlx::{ColumnIndex, Decode, Type};

use super::statement::Sql;
use crate::Result;

/// One backend. Reads go to a pool of connections; every write goes through
/// [`Dialect::write`] (one statement, committed on its own) or a [`WriteTx`].
pub trait Dialect: Clone + Send + Sync + 'static {
    type Row: SqlRow;
    type Tx: WriteTx<Row = Self::Row>;

    /// The larger of several values: `GREATEST` on PostgreSQL, the many-argument `MAX`
    /// on SQLite.
    const GREATEST: &'static str;
    /// Appended to the lease's `SELECT` of due links: on PostgreSQL several nodes lease at
    /// once, and each must take other links than the others instead of queueing behind
    /// their row locks. SQLite has one writer, so nothing to skip.
    const SKIP_LOCKED: &'static str;
    /// Appended to a `SELECT` that takes row locks ahead of a multi-row write, in the
    /// order the `SELECT` gives: on PostgreSQL writers lock rows as they reach them, so
    /// two transactions taking them in different orders could deadlock. Empty on SQLite
    /// (one writer): then the `SELECT` is not sent at all.
    const LOCK_ROWS: &'static str;
    /// A table of an incident's attributes as text `key` and `value` columns, inside a
    /// statement over `incidents`: attributes are JSON text on both backends, and each
    /// has its own function to unfold an object.
    const ATTRIBUTE_PAIRS: &'static str;

    fn read_all(&self, sql: Sql<'_>) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;
    fn read_optional(&self, sql: Sql<'_>)
        -> impl Future<Output = Result<Option<Self::Row>>> + Send;
    /// One statement that writes, committed on its own; the rows it affected.
    fn write(&self, sql: Sql<'_>) -> impl Future<Output = Result<u64>> + Send;
    /// One writing statement with `RETURNING`, committed on its own.
    fn write_returning(&self, sql: Sql<'_>) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;
    /// A transaction for several writes. It rolls back when dropped uncommitted.
    fn begin(&self) -> impl Future<Output = Result<Self::Tx>> + Send;
    /// Whether `error` says a table is missing (a database never migrated).
    fn is_undefined_table(error: &sqlx::Error) -> bool;
    /// Tells every node (this one included) `message`, on the channel the change
    /// listener hears. Nothing to tell on SQLite: one process holds the database.
    fn announce(&self, message: &str) -> impl Future<Output = Result<()>> + Send;
}

pub trait WriteTx: Send {
    type Row: SqlRow;
    /// Whether [`WriteTx::lock_key`] does anything: a hot path skips naming keys for
    /// nothing.
    const LOCKS_KEYS: bool;
    /// Whether one `execute` takes several `;`-separated statements with arguments (see
    /// `sql/script.rs`).
    const MULTI_STATEMENT: bool;

    fn execute(&mut self, sql: Sql<'_>) -> impl Future<Output = Result<u64>> + Send;
    fn fetch_all(&mut self, sql: Sql<'_>) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;
    fn fetch_optional(
        &mut self,
        sql: Sql<'_>,
    ) -> impl Future<Output = Result<Option<Self::Row>>> + Send;
    /// Serialises the transactions that lock `key` until this one ends. Where writers are
    /// serialised anyway (SQLite's one writer) this costs nothing.
    fn lock_key(&mut self, key: &str) -> impl Future<Output = Result<()>> + Send;
    /// [`WriteTx::lock_key`] without waiting: whether this transaction now holds `key`.
    fn try_lock_key(&mut self, key: &str) -> impl Future<Output = Result<bool>> + Send;
    /// This transaction makes links due: other nodes' idle engines are woken once it
    /// commits (nothing to wake on SQLite, where the engine shares the process).
    fn links_due(&mut self);
    fn commit(self) -> impl Future<Output = Result<()>> + Send;
}

/// A result row, read by column name in the three shapes the schema uses.
pub trait SqlRow: Send + Sync + 'static {
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn flag(&self, column: &str) -> Result<bool>;
}

impl<R> SqlRow for R
where
    R: sqlx::Row,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'c> &'c str: ColumnIndex<R>,
{
    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }

    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn int(&self, column: &str) -> Result<i64> {
        Ok(self.try_get(column)?)
    }

    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }

    fn flag(&self, column: &str) -> Result<bool> {
        Ok(self.try_get(column)?)
    }
}
