//! Instance facts in `meta`, and the check that this node's secret key opens what is
//! stored.

use chrono::Utc;
use secrecy::SecretString;

use super::dialect::{Dialect, SqlRow, WriteTx};
use super::statement::Sql;
use super::SqlStore;
use crate::{Result, StoreError};

const KEY_CHECK: &str = "secret_key_check";
const KEY_CHECK_TEXT: &str = "snowbound";
/// Rewritten by every [`check_writable`].
const WRITE_CHECK: &str = "last_write_check";

const UPSERT: &str = "INSERT INTO meta (key, value) VALUES ($1, $2) \
                      ON CONFLICT (key) DO UPDATE SET value = excluded.value";

pub async fn get_meta<D: Dialect>(store: &SqlStore<D>, key: &str) -> Result<Option<String>> {
    store
        .db
        .read_optional(Sql::new("SELECT value FROM meta WHERE key = $1").bind(key))
        .await?
        .map(|row| row.text("value"))
        .transpose()
}

pub async fn set_meta<D: Dialect>(store: &SqlStore<D>, key: &str, value: &str) -> Result<()> {
    store
        .db
        .write(Sql::new(UPSERT).bind(key).bind(value))
        .await?;
    Ok(())
}

/// Goes the way of every multi-statement write (a transaction on the writer), so a
/// database that cannot commit says so here.
pub async fn check_writable<D: Dialect>(store: &SqlStore<D>) -> Result<()> {
    let mut tx = store.db.begin().await?;
    let now = Utc::now().timestamp_millis().to_string();
    tx.execute(Sql::new(UPSERT).bind(WRITE_CHECK).bind(now))
        .await?;
    tx.commit().await
}

impl<D: Dialect> SqlStore<D> {
    /// Before anything is written, migrations included: a node whose key cannot open what
    /// is stored refuses to start instead of writing secrets nobody else can read. A
    /// database never migrated has nothing to check yet.
    pub(crate) async fn check_stored_key(&self) -> Result<()> {
        match self.stored_key_check().await? {
            Some(sealed) => self
                .secrets
                .open(&sealed)
                .map(drop)
                .map_err(StoreError::Secret),
            None => Ok(()),
        }
    }

    /// After migrating: the first node to start seals the check value; a node racing it
    /// with another key loses the insert, reads the winner's value and refuses to start.
    pub(crate) async fn seal_key_check(&self) -> Result<()> {
        let sealed = self.secrets.seal(&SecretString::from(KEY_CHECK_TEXT));
        self.db
            .write(
                Sql::new(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                )
                .bind(KEY_CHECK)
                .bind(sealed),
            )
            .await?;
        match self.stored_key_check().await? {
            Some(stored) => self
                .secrets
                .open(&stored)
                .map(drop)
                .map_err(StoreError::Secret),
            None => Err(StoreError::Corrupt("the secret key check vanished".into())),
        }
    }

    async fn stored_key_check(&self) -> Result<Option<String>> {
        match get_meta(self, KEY_CHECK).await {
            Err(StoreError::Database(e)) if D::is_undefined_table(&e) => Ok(None),
            other => other,
        }
    }
}
