//! Alert sources and the dedup keys their alerts open incidents under.

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use snowbound_core::source::Source;
use snowbound_core::{Incident, TimelineEntry};
use uuid::Uuid;

use super::dialect::{Dialect, SqlRow, WriteTx};
use super::statement::Sql;
use super::{conflict_on, found, incident_writes, rows, touched, SqlStore};
use crate::types::{
    IncidentWrite, KeptPayload, NewLink, RoutingWrite, PAYLOADS_KEPT, PAYLOAD_MAX_BYTES,
};
use crate::{Result, StoreError};

/// The lookup key of an ingest secret: senders present the secret, we compare hashes.
fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

const OPEN_INCIDENT_FOR_KEY: &str =
    "SELECT i.* FROM source_alerts a JOIN incidents i ON i.id = a.incident_id \
     WHERE a.source_id = $1 AND a.dedup_key = $2 AND i.status <> 'resolved'";

pub async fn create_source<D: Dialect>(
    store: &SqlStore<D>,
    source: &Source,
    secret: &SecretString,
) -> Result<()> {
    store
        .db
        .write(
            Sql::new(
                "INSERT INTO sources (id, team_id, kind, name, severity_map, secret_hash, \
                 secret_sealed, created_at, updated_at, servicenow, grafana, json_mapping, email) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(source.id)
            .bind(source.team_id)
            .bind(source.kind.as_str())
            .bind(&source.name)
            .bind(rows::to_json(&source.severity_map))
            .bind(secret_hash(secret.expose_secret()))
            .bind(store.secrets.seal(secret))
            .bind(source.created_at)
            .bind(source.updated_at)
            .bind(source.servicenow.as_ref().map(rows::to_json))
            .bind(source.grafana.as_ref().map(rows::to_json))
            .bind(source.json.as_ref().map(rows::to_json))
            .bind(source.email.as_ref().map(rows::to_json)),
        )
        .await
        .map_err(conflict_on("secret"))?;
    Ok(())
}

pub async fn get_source<D: Dialect>(store: &SqlStore<D>, id: Uuid) -> Result<Source> {
    let row = store
        .db
        .read_optional(Sql::new("SELECT * FROM sources WHERE id = $1").bind(id))
        .await?;
    rows::source(&found(row)?)
}

pub async fn list_sources<D: Dialect>(
    store: &SqlStore<D>,
    team_ids: Option<&[Uuid]>,
) -> Result<Vec<Source>> {
    let mut sql = Sql::new("SELECT * FROM sources WHERE 1 = 1");
    if let Some(teams) = team_ids {
        sql.push(" AND team_id").push_in(teams.iter().copied());
    }
    sql.push(" ORDER BY created_at, id");
    let rows = store.db.read_all(sql).await?;
    rows.iter().map(rows::source).collect()
}

pub async fn update_source<D: Dialect>(store: &SqlStore<D>, source: &Source) -> Result<()> {
    let updated = store
        .db
        .write(
            Sql::new(
                "UPDATE sources SET name = $1, severity_map = $2, updated_at = $3, servicenow = $5, \
                 grafana = $6, json_mapping = $7, email = $8 WHERE id = $4",
            )
            .bind(&source.name)
            .bind(rows::to_json(&source.severity_map))
            .bind(source.updated_at)
            .bind(source.id)
            .bind(source.servicenow.as_ref().map(rows::to_json))
            .bind(source.grafana.as_ref().map(rows::to_json))
            .bind(source.json.as_ref().map(rows::to_json))
            .bind(source.email.as_ref().map(rows::to_json)),
        )
        .await?;
    touched(updated)
}

pub async fn delete_source<D: Dialect>(store: &SqlStore<D>, id: Uuid) -> Result<()> {
    let deleted = store
        .db
        .write(Sql::new("DELETE FROM sources WHERE id = $1").bind(id))
        .await?;
    touched(deleted)
}

pub async fn source_secret<D: Dialect>(store: &SqlStore<D>, id: Uuid) -> Result<SecretString> {
    let row = store
        .db
        .read_optional(Sql::new("SELECT secret_sealed FROM sources WHERE id = $1").bind(id))
        .await?;
    let sealed = found(row)?.text("secret_sealed")?;
    store.secrets.open(&sealed).map_err(StoreError::Secret)
}

/// `None` removes the secret: requests are no longer signed.
pub async fn set_source_hmac_secret<D: Dialect>(
    store: &SqlStore<D>,
    id: Uuid,
    secret: Option<&SecretString>,
) -> Result<()> {
    let sealed = secret.map(|s| store.secrets.seal(s)).unwrap_or_default();
    let updated = store
        .db
        .write(
            Sql::new("UPDATE sources SET hmac_secret_sealed = $1 WHERE id = $2")
                .bind(sealed)
                .bind(id),
        )
        .await?;
    touched(updated)
}

pub async fn source_hmac_secret<D: Dialect>(
    store: &SqlStore<D>,
    id: Uuid,
) -> Result<Option<SecretString>> {
    let row = store
        .db
        .read_optional(Sql::new("SELECT hmac_secret_sealed FROM sources WHERE id = $1").bind(id))
        .await?;
    let sealed = found(row)?.text("hmac_secret_sealed")?;
    if sealed.is_empty() {
        return Ok(None);
    }
    store
        .secrets
        .open(&sealed)
        .map(Some)
        .map_err(StoreError::Secret)
}

/// The body as text PostgreSQL can hold (invalid UTF-8 and NUL replaced), cut to
/// [`PAYLOAD_MAX_BYTES`] at a character boundary.
fn kept_text(body: &[u8]) -> (String, bool) {
    let text = String::from_utf8_lossy(body).replace('\u{0}', "\u{FFFD}");
    if text.len() <= PAYLOAD_MAX_BYTES {
        return (text, false);
    }
    let mut end = PAYLOAD_MAX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_owned(), true)
}

/// One transaction: the insert and the pruning to the newest [`PAYLOADS_KEPT`], so the
/// ring never grows past its bound however many senders race.
pub async fn keep_source_payload<D: Dialect>(
    store: &SqlStore<D>,
    source_id: Uuid,
    received_at: chrono::DateTime<Utc>,
    body: &[u8],
) -> Result<()> {
    let (text, truncated) = kept_text(body);
    let mut tx = store.db.begin().await?;
    tx.lock_key(&format!("snowbound.source_payloads:{source_id}"))
        .await?;
    tx.execute(
        Sql::new(
            "INSERT INTO source_payloads (id, source_id, received_at, body, truncated) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(snowbound_core::new_id())
        .bind(source_id)
        .bind(received_at)
        .bind(text)
        .bind(truncated),
    )
    .await?;
    tx.execute(
        Sql::new(format!(
            "DELETE FROM source_payloads WHERE source_id = $1 AND id NOT IN \
             (SELECT id FROM source_payloads WHERE source_id = $1 \
              ORDER BY received_at DESC, id DESC LIMIT {PAYLOADS_KEPT})"
        ))
        .bind(source_id),
    )
    .await?;
    tx.commit().await
}

/// Newest first.
pub async fn source_payloads<D: Dialect>(
    store: &SqlStore<D>,
    source_id: Uuid,
) -> Result<Vec<KeptPayload>> {
    let rows = store
        .db
        .read_all(
            Sql::new(
                "SELECT * FROM source_payloads WHERE source_id = $1 \
                 ORDER BY received_at DESC, id DESC",
            )
            .bind(source_id),
        )
        .await?;
    rows.iter().map(rows::kept_payload).collect()
}

pub async fn rotate_source_secret<D: Dialect>(
    store: &SqlStore<D>,
    id: Uuid,
    secret: &SecretString,
) -> Result<()> {
    let updated = store
        .db
        .write(
            Sql::new(
                "UPDATE sources SET secret_hash = $1, secret_sealed = $2, updated_at = $3 \
                 WHERE id = $4",
            )
            .bind(secret_hash(secret.expose_secret()))
            .bind(store.secrets.seal(secret))
            .bind(Utc::now())
            .bind(id),
        )
        .await
        .map_err(conflict_on("secret"))?;
    touched(updated)
}

pub async fn source_by_secret<D: Dialect>(
    store: &SqlStore<D>,
    secret: &str,
) -> Result<Option<Source>> {
    store
        .db
        .read_optional(
            Sql::new("SELECT * FROM sources WHERE secret_hash = $1").bind(secret_hash(secret)),
        )
        .await?
        .as_ref()
        .map(rows::source)
        .transpose()
}

pub async fn open_incident_for_key<D: Dialect>(
    store: &SqlStore<D>,
    source_id: Uuid,
    dedup_key: &str,
) -> Result<Option<Incident>> {
    store
        .db
        .read_optional(
            Sql::new(OPEN_INCIDENT_FOR_KEY)
                .bind(source_id)
                .bind(dedup_key),
        )
        .await?
        .as_ref()
        .map(rows::incident)
        .transpose()
}

/// A keyed create on its own: `Conflict` on `dedup_key` while an unresolved incident
/// holds the key (see [`incident_writes::write_incidents`] for why two racers cannot
/// both open one).
pub async fn create_incident_for_key<D: Dialect>(
    store: &SqlStore<D>,
    source_id: Uuid,
    dedup_key: &str,
    incident: &Incident,
    timeline: &[TimelineEntry],
    links: &[NewLink],
) -> Result<()> {
    let write = IncidentWrite::Create {
        incident: incident.clone(),
        timeline: timeline.to_vec(),
        links: links.to_vec(),
        dedup_key: Some((source_id, dedup_key.to_owned())),
        routing: RoutingWrite::default(),
    };
    let mut answers = incident_writes::write_incidents(store, std::slice::from_ref(&write)).await?;
    match answers.pop().unwrap_or(Ok(())) {
        Err(StoreError::KeyHeld(_)) => Err(StoreError::Conflict { field: "dedup_key" }),
        answer => answer,
    }
}
