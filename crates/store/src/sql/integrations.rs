//! ServiceNow integrations: settings, sealed secrets, and the health the engine records.

use chrono::{DateTime, Utc};
use snowbound_core::{Credentials, Integration, SecretKind};
use uuid::Uuid;

use super::dialect::{Dialect, SqlRow, WriteTx};
use super::statement::Sql;
use super::{found, rows, touched, SqlStore};
use crate::types::IntegrationRecord;
use crate::{Result, StoreError};

/// Two counts, so each can use the (integration_id, state) index.
const WITH_FAILING_LINKS: &str = "SELECT i.*, \
     (SELECT COUNT(*) FROM links l WHERE l.integration_id = i.id AND l.state = 'parked') \
     + (SELECT COUNT(*) FROM links l WHERE l.integration_id = i.id AND l.state = 'retrying' \
        AND l.attempts > 0) AS failing_links \
     FROM integrations i";

pub async fn create_integration<D: Dialect>(
    store: &SqlStore<D>,
    integration: &Integration,
    secrets: &Credentials,
) -> Result<()> {
    let [password, client_secret, api_key] = sealed(store, integration, secrets);
    store
        .db
        .write(
            Sql::new(
                "INSERT INTO integrations (id, display_name, root_team_id, team_ids, forwarding, \
                 settings, password_sealed, client_secret_sealed, api_key_sealed, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(integration.id)
            .bind(&integration.display_name)
            .bind(integration.root_team_id)
            .bind(rows::to_json(&integration.team_ids))
            .bind(integration.forwarding.as_str())
            .bind(rows::to_json(&integration.servicenow))
            .bind(password.unwrap_or_default())
            .bind(client_secret.unwrap_or_default())
            .bind(api_key.unwrap_or_default())
            .bind(integration.created_at)
            .bind(integration.updated_at),
        )
        .await?;
    Ok(())
}

pub async fn update_integration<D: Dialect>(
    store: &SqlStore<D>,
    integration: &Integration,
    secrets: &Credentials,
) -> Result<()> {
    let [password, client_secret, api_key] = sealed(store, integration, secrets);
    let mut tx = store.db.begin().await?;
    // The integration row before its links: every writer touching both does it in this
    // order, so two PostgreSQL nodes can never deadlock on them.
    let updated = tx
        .execute(
            Sql::new(
                "UPDATE integrations SET display_name = $1, root_team_id = $2, team_ids = $3, \
                 forwarding = $4, settings = $5, password_sealed = COALESCE($6, password_sealed), \
                 client_secret_sealed = COALESCE($7, client_secret_sealed), \
                 api_key_sealed = COALESCE($8, api_key_sealed), \
                 failing = NULL, paused_until = 0, updated_at = $9 WHERE id = $10",
            )
            .bind(&integration.display_name)
            .bind(integration.root_team_id)
            .bind(rows::to_json(&integration.team_ids))
            .bind(integration.forwarding.as_str())
            .bind(rows::to_json(&integration.servicenow))
            .bind(password)
            .bind(client_secret)
            .bind(api_key)
            .bind(integration.updated_at)
            .bind(integration.id),
        )
        .await?;
    touched(updated)?;
    // New settings may change what every record should hold, and may cure what
    // ServiceNow rejected: every link gets another look, now, on whichever node.
    // A link a routing rule holds keeps waiting out its delay.
    let greatest = D::GREATEST;
    tx.execute(
        Sql::new(format!(
            "UPDATE links SET rev = rev + 1, state = 'pending', attempts = 0, \
             next_attempt_at = {greatest}($1, COALESCE(hold_until, 0)) WHERE integration_id = $2",
        ))
        .bind(Utc::now())
        .bind(integration.id),
    )
    .await?;
    tx.links_due();
    tx.commit().await
}

pub async fn delete_integration<D: Dialect>(store: &SqlStore<D>, id: Uuid) -> Result<()> {
    let deleted = store
        .db
        .write(Sql::new("DELETE FROM integrations WHERE id = $1").bind(id))
        .await?;
    touched(deleted)
}

pub async fn get_integration<D: Dialect>(
    store: &SqlStore<D>,
    id: Uuid,
) -> Result<IntegrationRecord> {
    let row = store
        .db
        .read_optional(Sql::new(format!("{WITH_FAILING_LINKS} WHERE i.id = $1")).bind(id))
        .await?;
    rows::integration(&found(row)?)
}

pub async fn list_integrations<D: Dialect>(store: &SqlStore<D>) -> Result<Vec<IntegrationRecord>> {
    let rows = store
        .db
        .read_all(Sql::new(format!(
            "{WITH_FAILING_LINKS} ORDER BY i.display_name, i.id"
        )))
        .await?;
    rows.iter().map(rows::integration).collect()
}

pub async fn list_integration_settings<D: Dialect>(
    store: &SqlStore<D>,
) -> Result<Vec<Integration>> {
    // No health wanted: the count is a constant rows::integration reads and nobody uses.
    let rows = store
        .db
        .read_all(Sql::new(
            "SELECT i.*, CAST(0 AS BIGINT) AS failing_links FROM integrations i \
             ORDER BY i.display_name, i.id",
        ))
        .await?;
    rows.iter()
        .map(|row| rows::integration(row).map(|record| record.integration))
        .collect()
}

pub async fn integration_credentials<D: Dialect>(
    store: &SqlStore<D>,
    id: Uuid,
) -> Result<Credentials> {
    let row = store
        .db
        .read_optional(
            Sql::new(
                "SELECT password_sealed, client_secret_sealed, api_key_sealed FROM integrations \
                 WHERE id = $1",
            )
            .bind(id),
        )
        .await?;
    let row = found(row)?;
    let open = |column: &str| -> Result<_> {
        let sealed = row.text(column)?;
        if sealed.is_empty() {
            return Ok(None);
        }
        store
            .secrets
            .open(&sealed)
            .map(Some)
            .map_err(StoreError::Secret)
    };
    Ok(Credentials {
        password: open("password_sealed")?,
        client_secret: open("client_secret_sealed")?,
        api_key: open("api_key_sealed")?,
    })
}

/// The sealed values to write for password, client secret and API key: `None` keeps the
/// stored one, and a secret the auth type does not use is cleared (`""`), so switching
/// types leaves no stale secret behind.
fn sealed<D: Dialect>(
    store: &SqlStore<D>,
    integration: &Integration,
    secrets: &Credentials,
) -> [Option<String>; 3] {
    let auth = &integration.servicenow.auth;
    [
        SecretKind::Password,
        SecretKind::ClientSecret,
        SecretKind::ApiKey,
    ]
    .map(|kind| {
        if auth.uses(kind) {
            secrets.get(kind).map(|secret| store.secrets.seal(secret))
        } else {
            Some(String::new())
        }
    })
}

/// Lives in the shared row, so every node holds back, not only the one that met the 429;
/// the longest pause wins when nodes report at once.
pub async fn pause_integration<D: Dialect>(
    store: &SqlStore<D>,
    id: Uuid,
    until: DateTime<Utc>,
) -> Result<()> {
    let greatest = D::GREATEST;
    store
        .db
        .write(
            Sql::new(format!(
                "UPDATE integrations SET paused_until = {greatest}(paused_until, $1) WHERE id = $2"
            ))
            .bind(until)
            .bind(id),
        )
        .await?;
    Ok(())
}

pub async fn mark_integration_failing<D: Dialect>(
    store: &SqlStore<D>,
    id: Uuid,
    error: &str,
) -> Result<()> {
    store
        .db
        .write(
            Sql::new("UPDATE integrations SET failing = $1 WHERE id = $2")
                .bind(error)
                .bind(id),
        )
        .await?;
    Ok(())
}
