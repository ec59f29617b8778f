//! The SQLite backend: one node, WAL mode. Every write goes through one writer
//! connection, multi-statement ones in a `BEGIN IMMEDIATE` transaction (taking the
//! write lock up front, so a transaction never fails half-way on a lock upgrade); reads
//! use a pool of their own. One process per database, held by a lock file beside it.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, SqlitePool, Transaction};

use crate::crypto::SecretBox;
use crate::sql::dialect::{Dialect, WriteTx};
use crate::sql::statement::Sql;
use crate::sql::SqlStore;
use crate::{Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The store on a SQLite file.
pub type SqliteStore = SqlStore<SqliteBackend>;

#[derive(Clone)]
pub struct SqliteBackend {
    readers: SqlitePool,
    /// Every write goes through this one connection. SQLite admits one writer at a time
    /// anyway; queueing for it here is fair and wakes the next writer at once, where
    /// contending in SQLite's busy handler sleeps for milliseconds.
    writer: SqlitePool,
    /// Held (locked) for as long as any clone of the store lives; none for a database in
    /// memory, which belongs to its process anyway.
    _lock: Option<Arc<File>>,
}

impl SqlStore<SqliteBackend> {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`), refuses it when
    /// another process uses it, checks that `secrets` opens what is already stored, then
    /// applies the migrations.
    pub async fn open(url: &str, secrets: SecretBox) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk before it is answered, so an alert answered 2xx
            // survives a power cut too, not only a killed process (NORMAL in WAL mode can
            // lose the last commits). Group commit pays one fsync per batch of writes.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let path = options.get_filename().to_owned();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                path: parent.to_owned(),
                source,
            })?;
        }
        let lock = lock_database(&path)?;
        // A connection to a local file cannot go stale, and the default ping before each
        // acquire is a second round trip to the connection's thread for every query.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            // A transaction whose statement or COMMIT failed on a full disk may be rolled
            // back by SQLite itself; sqlx's ROLLBACK then fails and the connection stays
            // "in a transaction" for sqlx, refusing every later BEGIN. Such a connection
            // is replaced by a fresh one, so writes work again once the disk has room.
            .before_acquire(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
            .connect_with(options.clone())
            .await?;
        // Read-only, so a write that strays from the writer fails at once, in every test.
        let readers = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.read_only(true))
            .await?;
        let store = SqlStore {
            db: SqliteBackend {
                readers,
                writer,
                _lock: lock.map(Arc::new),
            },
            secrets,
        };
        store.check_stored_key().await?;
        MIGRATOR.run(&store.db.writer).await?;
        store.seal_key_check().await?;
        Ok(store)
    }
}

/// One process per database: SQLite would let a second one in, and two engines would
/// then take each other's leases for dead ones (see `release_all_leases`). The lock is an
/// OS file lock, so it ends with the process, however that ends.
fn lock_database(database: &Path) -> Result<Option<File>> {
    let name = database.file_name().unwrap_or_default().to_string_lossy();
    if name.is_empty() || name == ":memory:" {
        return Ok(None);
    }
    let path: PathBuf = database.with_file_name(format!("{name}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Err(StoreError::InUse(database.to_owned())),
        Err(TryLockError::Error(source)) => Err(StoreError::Io { path, source }),
    }
}

impl Dialect for SqliteBackend {
    type Row = SqliteRow;
    type Tx = SqliteTx;

    const GREATEST: &'static str = "MAX";
    const SKIP_LOCKED: &'static str = "";
    const LOCK_ROWS: &'static str = "";
    const ATTRIBUTE_PAIRS: &'static str = "json_each(incidents.attributes)";

    async fn read_all(&self, sql: Sql<'_>) -> Result<Vec<SqliteRow>> {
        let sql = sql.with_anonymous_placeholders();
        Ok(sql.query::<Sqlite>().fetch_all(&self.readers).await?)
    }

    async fn read_optional(&self, sql: Sql<'_>) -> Result<Option<SqliteRow>> {
        let sql = sql.with_anonymous_placeholders();
        Ok(sql.query::<Sqlite>().fetch_optional(&self.readers).await?)
    }

    async fn write(&self, sql: Sql<'_>) -> Result<u64> {
        let sql = sql.with_anonymous_placeholders();
        Ok(sql
            .query::<Sqlite>()
            .execute(&self.writer)
            .await?
            .rows_affected())
    }

    async fn write_returning(&self, sql: Sql<'_>) -> Result<Vec<SqliteRow>> {
        let sql = sql.with_anonymous_placeholders();
        Ok(sql.query::<Sqlite>().fetch_all(&self.writer).await?)
    }

    async fn begin(&self) -> Result<SqliteTx> {
        Ok(SqliteTx(self.writer.begin_with("BEGIN IMMEDIATE").await?))
    }

    fn is_undefined_table(error: &sqlx::Error) -> bool {
        matches!(error, sqlx::Error::Database(db) if db.message().starts_with("no such table"))
    }

    async fn announce(&self, _message: &str) -> Result<()> {
        Ok(())
    }
}

pub struct SqliteTx(Transaction<'static, Sqlite>);

impl WriteTx for SqliteTx {
    type Row = SqliteRow;
    const MULTI_STATEMENT: bool = true;
    const LOCKS_KEYS: bool = false;

    async fn execute(&mut self, sql: Sql<'_>) -> Result<u64> {
        let sql = sql.with_anonymous_placeholders();
        Ok(sql
            .query::<Sqlite>()
            .execute(&mut *self.0)
            .await?
            .rows_affected())
    }

    async fn fetch_all(&mut self, sql: Sql<'_>) -> Result<Vec<SqliteRow>> {
        let sql = sql.with_anonymous_placeholders();
        Ok(sql.query::<Sqlite>().fetch_all(&mut *self.0).await?)
    }

    async fn fetch_optional(&mut self, sql: Sql<'_>) -> Result<Option<SqliteRow>> {
        let sql = sql.with_anonymous_placeholders();
        Ok(sql.query::<Sqlite>().fetch_optional(&mut *self.0).await?)
    }

    /// `BEGIN IMMEDIATE` on the one writer serialises every write transaction already.
    async fn lock_key(&mut self, _key: &str) -> Result<()> {
        Ok(())
    }

    async fn try_lock_key(&mut self, _key: &str) -> Result<bool> {
        Ok(true)
    }

    fn links_due(&mut self) {}

    async fn commit(self) -> Result<()> {
        Ok(self.0.commit().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_read_connections_refuse_writes() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = SqliteStore::open(&url, SecretBox::random()).await.unwrap();
        let strayed = store
            .db
            .read_all(Sql::new(
                "INSERT INTO meta (key, value) VALUES ('a', 'b') RETURNING *",
            ))
            .await;
        assert!(strayed.is_err(), "a write on a read connection must fail");
        assert_eq!(crate::sql::meta::get_meta(&store, "a").await.unwrap(), None);
    }
}
