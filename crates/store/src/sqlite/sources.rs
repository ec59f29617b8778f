//! Alert sources, their dedup keys, routing rules and token revocation (issue #5).

use chrono::Utc;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use snowbound_core::routing::RoutingRule;
use snowbound_core::source::{Source, SourceKind};
use snowbound_core::{Incident, TimelineEntry};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use uuid::Uuid;

use super::rows::{self, ms, to_json};
use super::{conflict_on, found, insert_incident, SqliteStore};
use crate::types::{ApiToken, NewLink};
use crate::{Result, StoreError};

/// The lookup key of an ingest secret: senders present the secret, we compare hashes.
fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn source(row: &SqliteRow) -> Result<Source> {
    let kind: String = row.try_get("kind")?;
    Ok(Source {
        id: rows::uuid(row.try_get("id")?)?,
        team_id: rows::uuid(row.try_get("team_id")?)?,
        kind: SourceKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("bad source kind `{kind}`")))?,
        name: row.try_get("name")?,
        severity_map: rows::json(row.try_get("severity_map")?)?,
        created_at: rows::time(row.try_get("created_at")?),
        updated_at: rows::time(row.try_get("updated_at")?),
    })
}

fn rule(row: &SqliteRow) -> Result<RoutingRule> {
    Ok(RoutingRule {
        id: rows::uuid(row.try_get("id")?)?,
        team_id: rows::uuid(row.try_get("team_id")?)?,
        name: row.try_get("name")?,
        position: row.try_get("position")?,
        when: rows::json(row.try_get("conditions")?)?,
        then: rows::json(row.try_get("actions")?)?,
        created_at: rows::time(row.try_get("created_at")?),
        updated_at: rows::time(row.try_get("updated_at")?),
    })
}

fn token(row: &SqliteRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: rows::uuid(row.try_get("id")?)?,
        name: row.try_get("name")?,
        hash: row.try_get("hash")?,
        team_ids: rows::json(row.try_get("team_ids")?)?,
        created_at: rows::time(row.try_get("created_at")?),
    })
}

/// `AND team_id IN (…)` for a team filter; `None` = every team.
fn push_team_filter(query: &mut sqlx::QueryBuilder<'_, sqlx::Sqlite>, teams: Option<&[Uuid]>) {
    if let Some(teams) = teams {
        query.push(" AND team_id IN (");
        let mut ids = query.separated(", ");
        for team in teams {
            ids.push_bind(team.to_string());
        }
        // `IN ()` is a syntax error; an empty filter matches nothing.
        if teams.is_empty() {
            ids.push("NULL");
        }
        query.push(")");
    }
}

fn must_touch(affected: u64) -> Result<()> {
    if affected == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

impl SqliteStore {
    pub(super) async fn insert_source(&self, source: &Source, secret: &SecretString) -> Result<()> {
        sqlx::query(
            "INSERT INTO sources (id, team_id, kind, name, severity_map, secret_hash, secret_sealed, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(source.id.to_string())
        .bind(source.team_id.to_string())
        .bind(source.kind.as_str())
        .bind(&source.name)
        .bind(to_json(&source.severity_map))
        .bind(secret_hash(secret.expose_secret()))
        .bind(self.secrets.seal(secret))
        .bind(ms(source.created_at))
        .bind(ms(source.updated_at))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on(e, "secret"))?;
        Ok(())
    }

    pub(super) async fn select_source(&self, id: Uuid) -> Result<Source> {
        let row = sqlx::query("SELECT * FROM sources WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        source(&found(row)?)
    }

    pub(super) async fn select_sources(&self, teams: Option<&[Uuid]>) -> Result<Vec<Source>> {
        let mut query = sqlx::QueryBuilder::new("SELECT * FROM sources WHERE 1 = 1");
        push_team_filter(&mut query, teams);
        query.push(" ORDER BY created_at, id");
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(source).collect()
    }

    pub(super) async fn write_source(&self, source: &Source) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE sources SET name = ?, severity_map = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&source.name)
        .bind(to_json(&source.severity_map))
        .bind(ms(source.updated_at))
        .bind(source.id.to_string())
        .execute(&self.pool)
        .await?;
        must_touch(updated.rows_affected())
    }

    pub(super) async fn remove_source(&self, id: Uuid) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM sources WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        must_touch(deleted.rows_affected())
    }

    pub(super) async fn sealed_source_secret(&self, id: Uuid) -> Result<SecretString> {
        let sealed: String = found(
            sqlx::query_scalar("SELECT secret_sealed FROM sources WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )?;
        self.secrets.open(&sealed).map_err(StoreError::Secret)
    }

    pub(super) async fn replace_source_secret(
        &self,
        id: Uuid,
        secret: &SecretString,
    ) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE sources SET secret_hash = ?, secret_sealed = ?, updated_at = ? WHERE id = ?",
        )
        .bind(secret_hash(secret.expose_secret()))
        .bind(self.secrets.seal(secret))
        .bind(ms(Utc::now()))
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on(e, "secret"))?;
        must_touch(updated.rows_affected())
    }

    pub(super) async fn find_source_by_secret(&self, secret: &str) -> Result<Option<Source>> {
        let row = sqlx::query("SELECT * FROM sources WHERE secret_hash = ?")
            .bind(secret_hash(secret))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(source).transpose()
    }

    pub(super) async fn select_open_incident_for_key(
        &self,
        source_id: Uuid,
        dedup_key: &str,
    ) -> Result<Option<Incident>> {
        let row = sqlx::query(
            "SELECT i.* FROM source_alerts a JOIN incidents i ON i.id = a.incident_id \
             WHERE a.source_id = ? AND a.dedup_key = ? AND i.status <> 'resolved'",
        )
        .bind(source_id.to_string())
        .bind(dedup_key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::incident).transpose()
    }

    /// The check and the insert share one `BEGIN IMMEDIATE` transaction: SQLite's write
    /// lock serialises two alerts racing with one key, so the second sees the first's
    /// incident and answers `Conflict` instead of opening a twin.
    pub(super) async fn insert_incident_for_key(
        &self,
        source_id: Uuid,
        dedup_key: &str,
        incident: &Incident,
        timeline: &[TimelineEntry],
        links: &[NewLink],
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let held: Option<String> = sqlx::query_scalar(
            "SELECT i.id FROM source_alerts a JOIN incidents i ON i.id = a.incident_id \
             WHERE a.source_id = ? AND a.dedup_key = ? AND i.status <> 'resolved'",
        )
        .bind(source_id.to_string())
        .bind(dedup_key)
        .fetch_optional(&mut *tx)
        .await?;
        if held.is_some() {
            return Err(StoreError::Conflict { field: "dedup_key" });
        }
        insert_incident(&mut tx, incident, timeline, links).await?;
        sqlx::query(
            "INSERT INTO source_alerts (source_id, dedup_key, incident_id) VALUES (?, ?, ?) \
             ON CONFLICT (source_id, dedup_key) DO UPDATE SET incident_id = excluded.incident_id",
        )
        .bind(source_id.to_string())
        .bind(dedup_key)
        .bind(incident.id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn insert_rule(&self, rule: &RoutingRule) -> Result<()> {
        sqlx::query(
            "INSERT INTO routing_rules (id, team_id, name, position, conditions, actions, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(rule.id.to_string())
        .bind(rule.team_id.to_string())
        .bind(&rule.name)
        .bind(rule.position)
        .bind(to_json(&rule.when))
        .bind(to_json(&rule.then))
        .bind(ms(rule.created_at))
        .bind(ms(rule.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn select_rule(&self, id: Uuid) -> Result<RoutingRule> {
        let row = sqlx::query("SELECT * FROM routing_rules WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        rule(&found(row)?)
    }

    pub(super) async fn select_rules(&self, teams: Option<&[Uuid]>) -> Result<Vec<RoutingRule>> {
        let mut query = sqlx::QueryBuilder::new("SELECT * FROM routing_rules WHERE 1 = 1");
        push_team_filter(&mut query, teams);
        query.push(" ORDER BY team_id, position, created_at, id");
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(rule).collect()
    }

    pub(super) async fn write_rule(&self, rule: &RoutingRule) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE routing_rules SET name = ?, position = ?, conditions = ?, actions = ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(&rule.name)
        .bind(rule.position)
        .bind(to_json(&rule.when))
        .bind(to_json(&rule.then))
        .bind(ms(rule.updated_at))
        .bind(rule.id.to_string())
        .execute(&self.pool)
        .await?;
        must_touch(updated.rows_affected())
    }

    pub(super) async fn remove_rule(&self, id: Uuid) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM routing_rules WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        must_touch(deleted.rows_affected())
    }

    pub(super) async fn select_tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(
            "SELECT * FROM api_tokens WHERE revoked_at IS NULL ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(token).collect()
    }

    /// Every request looks its token up afresh, so a revoked token fails on the next one.
    pub(super) async fn mark_token_revoked(&self, id: Uuid) -> Result<()> {
        let updated =
            sqlx::query("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(ms(Utc::now()))
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        must_touch(updated.rows_affected())
    }
}
