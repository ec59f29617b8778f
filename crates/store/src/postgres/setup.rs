//! Opening a PostgreSQL store: the secret key check, then migrations applied or checked.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{channel_for, PostgresBackend};
use crate::crypto::SecretBox;
use crate::sql::{Dialect, SqlStore};
use crate::{Result, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Whether [`PostgresStore::open`] brings the schema up to date or only checks it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    Apply,
    /// For nodes started with `SNOWBOUND_NO_MIGRATE`: refuse to run on a schema older
    /// than this binary rather than fail later on a missing column.
    RequireApplied,
}

impl SqlStore<PostgresBackend> {
    /// Connects to `url` (`postgres://…`), checks that `secrets` opens what is already
    /// stored — before writing anything, migrations included — then applies or checks
    /// the migrations.
    pub async fn open(url: &str, secrets: SecretBox, migrations: Migrations) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("snowbound");
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await?;
        let store = SqlStore {
            db: PostgresBackend {
                pool,
                channel: channel_for(&schema).into(),
            },
            secrets,
        };
        store.check_stored_key().await?;
        match migrations {
            Migrations::Apply => store.migrate().await?,
            Migrations::RequireApplied => store.require_migrated().await?,
        }
        store.seal_key_check().await?;
        Ok(store)
    }

    /// Applies pending migrations. Nodes starting together are safe: the migrator holds
    /// an advisory lock while it works.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.db.pool).await?;
        Ok(())
    }

    async fn require_migrated(&self) -> Result<()> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.db.pool)
                .await
            {
                Ok(versions) => versions,
                Err(e) if PostgresBackend::is_undefined_table(&e) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
        let applied: BTreeSet<i64> = applied.into_iter().collect();
        let missing: Vec<String> = MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
            .map(|m| format!("{:04}_{}", m.version, m.description.replace(' ', "_")))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Schema(format!(
                "the database lacks migrations {}; run `snowbound migrate` (or start without SNOWBOUND_NO_MIGRATE)",
                missing.join(", ")
            )))
        }
    }
}
