//! Opening a PostgreSQL store: the secret key check, then migrations applied or checked.

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use super::PostgresStore;
use crate::crypto::SecretBox;
use crate::{Result, StoreError};

const KEY_CHECK: &str = "secret_key_check";
const KEY_CHECK_TEXT: &str = "snowbound";
/// PostgreSQL's "undefined_table": the schema has not been migrated yet.
const UNDEFINED_TABLE: &str = "42P01";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Whether [`PostgresStore::open`] brings the schema up to date or only checks it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    Apply,
    /// For nodes started with `SNOWBOUND_NO_MIGRATE`: refuse to run on a schema older
    /// than this binary rather than fail later on a missing column.
    RequireApplied,
}

impl PostgresStore {
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
        let store = PostgresStore {
            pool,
            secrets,
            channel: super::links::channel_for(&schema),
        };
        if let Some(sealed) = store.stored_key_check().await? {
            store.secrets.open(&sealed).map_err(StoreError::Secret)?;
        }
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
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn require_migrated(&self) -> Result<()> {
        let applied: Vec<i64> =
            match sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                .fetch_all(&self.pool)
                .await
            {
                Ok(versions) => versions,
                Err(e) if is_undefined_table(&e) => Vec::new(),
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

    async fn stored_key_check(&self) -> Result<Option<String>> {
        match sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(KEY_CHECK)
            .fetch_optional(&self.pool)
            .await
        {
            Ok(value) => Ok(value),
            Err(e) if is_undefined_table(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The first node to start seals the check value; a node racing it with another
    /// key loses the insert, reads the winner's value and refuses to start.
    async fn seal_key_check(&self) -> Result<()> {
        let sealed = self.secrets.seal(&SecretString::from(KEY_CHECK_TEXT));
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(KEY_CHECK)
            .bind(&sealed)
            .execute(&self.pool)
            .await?;
        match self.stored_key_check().await? {
            Some(stored) => self
                .secrets
                .open(&stored)
                .map(|_| ())
                .map_err(StoreError::Secret),
            None => Err(StoreError::Corrupt("the secret key check vanished".into())),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn is_undefined_table(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some(UNDEFINED_TABLE))
}
