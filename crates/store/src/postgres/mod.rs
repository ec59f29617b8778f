//! The PostgreSQL backend: several Snowbound nodes sharing one database. Single
//! statements are atomic under READ COMMITTED; links are leased with
//! `FOR UPDATE SKIP LOCKED` and a lease expiry, and every transaction that makes links
//! due says so with `pg_notify`, so idle nodes wake at once (polling is the fallback).

mod api_calls;
mod links;
mod listen;
mod rows;
mod setup;
mod sources;
mod users;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use snowbound_core::routing::RoutingRule;
use snowbound_core::source::Source;
use snowbound_core::{Incident, Integration, Team, TimelineEntry};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::crypto::SecretBox;
use crate::types::*;
use crate::{LeaseOutcome, Result, Session, Store, StoreError, User};
use rows::{ms, to_json};

pub use links::CHANNEL;
pub use setup::Migrations;

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    secrets: SecretBox,
    /// Where this deployment's change notifications go; see [`links::channel_for`].
    channel: String,
}

fn conflict_on(e: sqlx::Error, field: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict { field },
        _ => StoreError::Database(e),
    }
}

fn found<T>(row: Option<T>) -> Result<T> {
    row.ok_or(StoreError::NotFound)
}

async fn insert_timeline(
    conn: &mut PgConnection,
    incident_id: Uuid,
    entries: &[TimelineEntry],
) -> Result<()> {
    for entry in entries {
        sqlx::query(
            "INSERT INTO timeline (incident_id, at, actor, kind, detail) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(incident_id.to_string())
        .bind(ms(entry.at))
        .bind(&entry.actor)
        .bind(&entry.kind)
        .bind(&entry.detail)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// An incident with its first timeline entries and links (inside the caller's transaction).
async fn insert_incident(
    conn: &mut PgConnection,
    incident: &Incident,
    timeline: &[TimelineEntry],
    new_links: &[NewLink],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO incidents (id, team_id, title, description, severity, status, attributes, \
         resolve_comment, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(incident.id.to_string())
    .bind(incident.team_id.to_string())
    .bind(&incident.title)
    .bind(&incident.description)
    .bind(incident.severity.as_str())
    .bind(incident.status.as_str())
    .bind(to_json(&incident.attributes))
    .bind(&incident.resolve_comment)
    .bind(ms(incident.created_at))
    .bind(ms(incident.updated_at))
    .execute(&mut *conn)
    .await?;
    insert_timeline(&mut *conn, incident.id, timeline).await?;
    for link in new_links {
        links::upsert(&mut *conn, link).await?;
    }
    Ok(())
}

const INTEGRATION_COLUMNS: &str =
    "i.*, (SELECT COUNT(*) FROM links l WHERE l.integration_id = i.id \
     AND (l.state = 'parked' OR (l.state = 'retrying' AND l.attempts > 0))) AS failing_links";

#[async_trait]
impl Store for PostgresStore {
    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_team(&self, team: &Team) -> Result<()> {
        sqlx::query("INSERT INTO teams (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(team.id.to_string())
            .bind(&team.name)
            .bind(ms(team.created_at))
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_on(e, "name"))?;
        Ok(())
    }

    async fn list_teams(&self) -> Result<Vec<Team>> {
        let rows = sqlx::query("SELECT * FROM teams ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Team {
                    id: rows::uuid(row.try_get("id")?)?,
                    name: row.try_get("name")?,
                    created_at: rows::time(row.try_get("created_at")?),
                })
            })
            .collect()
    }

    async fn get_team(&self, id: Uuid) -> Result<Team> {
        let row = found(
            sqlx::query("SELECT * FROM teams WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )?;
        Ok(Team {
            id,
            name: row.try_get("name")?,
            created_at: rows::time(row.try_get("created_at")?),
        })
    }

    async fn create_token(&self, token: &ApiToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_tokens (id, name, hash, team_ids, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.id.to_string())
        .bind(&token.name)
        .bind(&token.hash)
        .bind(to_json(&token.team_ids))
        .bind(ms(token.created_at))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_on(e, "token"))?;
        Ok(())
    }

    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = $1 AND revoked_at IS NULL")
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(ApiToken {
                id: rows::uuid(row.try_get("id")?)?,
                name: row.try_get("name")?,
                hash: row.try_get("hash")?,
                team_ids: rows::json(row.try_get("team_ids")?)?,
                created_at: rows::time(row.try_get("created_at")?),
            })
        })
        .transpose()
    }

    async fn create_integration(
        &self,
        integration: &Integration,
        password: &SecretString,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO integrations (id, display_name, root_team_id, team_ids, forwarding, settings, \
             password_sealed, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(integration.id.to_string())
        .bind(&integration.display_name)
        .bind(integration.root_team_id.to_string())
        .bind(to_json(&integration.team_ids))
        .bind(integration.forwarding.as_str())
        .bind(to_json(&integration.servicenow))
        .bind(self.secrets.seal(password))
        .bind(ms(integration.created_at))
        .bind(ms(integration.updated_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn update_integration(
        &self,
        integration: &Integration,
        password: Option<&SecretString>,
    ) -> Result<()> {
        let id = integration.id.to_string();
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE integrations SET display_name = $1, root_team_id = $2, team_ids = $3, forwarding = $4, \
             settings = $5, password_sealed = COALESCE($6, password_sealed), failing = NULL, paused_until = 0, \
             updated_at = $7 WHERE id = $8",
        )
        .bind(&integration.display_name)
        .bind(integration.root_team_id.to_string())
        .bind(to_json(&integration.team_ids))
        .bind(integration.forwarding.as_str())
        .bind(to_json(&integration.servicenow))
        .bind(password.map(|p| self.secrets.seal(p)))
        .bind(ms(integration.updated_at))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // New settings may change what every record should hold, and may cure what
        // ServiceNow rejected: every link gets another look, now, on whichever node.
        sqlx::query(
            "UPDATE links SET rev = rev + 1, state = 'pending', attempts = 0, next_attempt_at = $1 \
             WHERE integration_id = $2",
        )
        .bind(ms(Utc::now()))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        links::notify(&mut tx, &self.channel).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_integration(&self, id: Uuid) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM integrations WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn get_integration(&self, id: Uuid) -> Result<IntegrationRecord> {
        let row = sqlx::query(&format!(
            "SELECT {INTEGRATION_COLUMNS} FROM integrations i WHERE i.id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        rows::integration(&found(row)?)
    }

    async fn list_integrations(&self) -> Result<Vec<IntegrationRecord>> {
        let rows = sqlx::query(&format!(
            "SELECT {INTEGRATION_COLUMNS} FROM integrations i ORDER BY i.display_name, i.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::integration).collect()
    }

    async fn list_integration_settings(&self) -> Result<Vec<Integration>> {
        // The health columns are zero here: rows::integration reads them, nobody uses them.
        let rows = sqlx::query(
            "SELECT i.*, 0::BIGINT AS failing_links FROM integrations i ORDER BY i.display_name, i.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| rows::integration(row).map(|record| record.integration))
            .collect()
    }

    async fn integration_password(&self, id: Uuid) -> Result<SecretString> {
        let sealed: String = found(
            sqlx::query_scalar("SELECT password_sealed FROM integrations WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )?;
        self.secrets.open(&sealed).map_err(StoreError::Secret)
    }

    async fn pause_integration(&self, id: Uuid, until: DateTime<Utc>) -> Result<()> {
        // Lives in the shared row, so every node holds back, not only the one that met
        // the 429; GREATEST keeps the longest pause when nodes report at once.
        sqlx::query(
            "UPDATE integrations SET paused_until = GREATEST(paused_until, $1) WHERE id = $2",
        )
        .bind(ms(until))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_integration_failing(&self, id: Uuid, error: &str) -> Result<()> {
        sqlx::query("UPDATE integrations SET failing = $1 WHERE id = $2")
            .bind(error)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_incident(
        &self,
        incident: &Incident,
        timeline: &[TimelineEntry],
        new_links: &[NewLink],
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_incident(&mut tx, incident, timeline, new_links).await?;
        if !new_links.is_empty() {
            links::notify(&mut tx, &self.channel).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn update_incident(
        &self,
        incident: &Incident,
        expected_updated_at: DateTime<Utc>,
        timeline: &[TimelineEntry],
        new_links: &[NewLink],
    ) -> Result<()> {
        let id = incident.id.to_string();
        let mut tx = self.pool.begin().await?;
        // The row lock this UPDATE takes makes a concurrent writer on another node wait
        // and then re-check `updated_at` against our committed row: it gets Stale.
        let updated = sqlx::query(
            "UPDATE incidents SET title = $1, description = $2, severity = $3, status = $4, attributes = $5, \
             resolve_comment = $6, updated_at = $7 WHERE id = $8 AND updated_at = $9",
        )
        .bind(&incident.title)
        .bind(&incident.description)
        .bind(incident.severity.as_str())
        .bind(incident.status.as_str())
        .bind(to_json(&incident.attributes))
        .bind(&incident.resolve_comment)
        .bind(ms(incident.updated_at))
        .bind(&id)
        .bind(ms(expected_updated_at))
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM incidents WHERE id = $1")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
            return Err(if exists.is_some() {
                StoreError::Stale
            } else {
                StoreError::NotFound
            });
        }
        insert_timeline(&mut tx, incident.id, timeline).await?;
        links::bump_incident(&mut tx, incident.id).await?;
        for link in new_links {
            links::upsert(&mut tx, link).await?;
        }
        links::notify(&mut tx, &self.channel).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_incident(&self, id: Uuid) -> Result<Incident> {
        let row = sqlx::query("SELECT * FROM incidents WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        rows::incident(&found(row)?)
    }

    async fn list_incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>> {
        let mut query = sqlx::QueryBuilder::new("SELECT * FROM incidents WHERE 1 = 1");
        if let Some(teams) = &filter.team_ids {
            if teams.is_empty() {
                return Ok(Vec::new());
            }
            let teams: Vec<String> = teams.iter().map(Uuid::to_string).collect();
            query.push(" AND team_id = ANY(").push_bind(teams).push(")");
        }
        if let Some(status) = filter.status {
            query.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(severity) = filter.severity {
            query.push(" AND severity = ").push_bind(severity.as_str());
        }
        query
            .push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.unwrap_or(100)));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(rows::incident).collect()
    }

    async fn timeline(&self, incident_id: Uuid) -> Result<Vec<TimelineEntry>> {
        let rows = sqlx::query("SELECT * FROM timeline WHERE incident_id = $1 ORDER BY id")
            .bind(incident_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::timeline_entry).collect()
    }

    async fn forward(&self, link: &NewLink, timeline: &TimelineEntry) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        links::upsert(&mut tx, link).await?;
        insert_timeline(&mut tx, link.incident_id, std::slice::from_ref(timeline)).await?;
        links::notify(&mut tx, &self.channel).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn links_of_incident(&self, incident_id: Uuid) -> Result<Vec<Link>> {
        let rows = sqlx::query(
            "SELECT * FROM links WHERE incident_id = $1 ORDER BY created_at, integration_id",
        )
        .bind(incident_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::link).collect()
    }

    async fn get_link(&self, incident_id: Uuid, integration_id: Uuid) -> Result<Link> {
        let row = sqlx::query("SELECT * FROM links WHERE incident_id = $1 AND integration_id = $2")
            .bind(incident_id.to_string())
            .bind(integration_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        rows::link(&found(row)?)
    }

    async fn retry_link(&self, incident_id: Uuid, integration_id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE links SET rev = rev + 1, state = 'pending', attempts = 0, next_attempt_at = $1 \
             WHERE incident_id = $2 AND integration_id = $3",
        )
        .bind(ms(Utc::now()))
        .bind(incident_id.to_string())
        .bind(integration_id.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        links::notify(&mut tx, &self.channel).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn recreate_link(&self, incident_id: Uuid, integration_id: Uuid) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE links SET sys_id = NULL, number = NULL, servicenow_state = NULL, \
             pushed = '{}', create_unsure = TRUE, rev = rev + 1, state = 'pending', \
             attempts = 0, next_attempt_at = $1 \
             WHERE incident_id = $2 AND integration_id = $3 AND state = 'parked' \
             AND sys_id IS NOT NULL",
        )
        .bind(ms(Utc::now()))
        .bind(incident_id.to_string())
        .bind(integration_id.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        links::notify(&mut tx, &self.channel).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn lease_due_links(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Lease>> {
        links::lease_due(&self.pool, owner, now, lease_until, limit).await
    }

    async fn complete_lease(&self, lease: &Lease, outcome: &LeaseOutcome) -> Result<bool> {
        links::complete(&self.pool, lease, outcome).await
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(GREATEST(l.next_attempt_at, l.lease_until, i.paused_until)) FROM links l \
             JOIN integrations i ON i.id = l.integration_id \
             WHERE l.state IN ('pending', 'retrying') AND i.failing IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(rows::opt_time(due))
    }

    async fn record_api_calls(
        &self,
        integration_id: Uuid,
        incident_id: Option<Uuid>,
        calls: &[ApiCallRecord],
    ) -> Result<()> {
        api_calls::record(&self.pool, integration_id, incident_id, calls).await
    }

    async fn list_api_calls(&self, filter: &ApiCallFilter) -> Result<Vec<ApiCallRecord>> {
        api_calls::list(&self.pool, filter).await
    }

    // --- web UI users and sessions (issue #6): see users.rs --------------------------
    async fn count_users(&self) -> Result<i64> {
        users::count(&self.pool).await
    }

    async fn create_user(&self, user: &User) -> Result<()> {
        users::create(&self.pool, user).await
    }

    async fn create_first_user(&self, user: &User) -> Result<bool> {
        users::create_first(&self.pool, user).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        users::by_email(&self.pool, email).await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        users::list(&self.pool).await
    }

    async fn create_session(&self, session: &Session) -> Result<()> {
        users::create_session(&self.pool, session).await
    }

    async fn session(&self, id: &str, now: DateTime<Utc>) -> Result<Option<(Session, User)>> {
        users::session(&self.pool, id, now).await
    }

    async fn delete_session(&self, id: &str) -> Result<()> {
        users::delete_session(&self.pool, id).await
    }

    // --- alert sources, dedup keys, routing rules, tokens (issue #5): see sources.rs ---
    async fn create_source(&self, source: &Source, secret: &SecretString) -> Result<()> {
        self.insert_source(source, secret).await
    }

    async fn get_source(&self, id: Uuid) -> Result<Source> {
        self.select_source(id).await
    }

    async fn list_sources(&self, team_ids: Option<&[Uuid]>) -> Result<Vec<Source>> {
        self.select_sources(team_ids).await
    }

    async fn update_source(&self, source: &Source) -> Result<()> {
        self.write_source(source).await
    }

    async fn delete_source(&self, id: Uuid) -> Result<()> {
        self.remove_source(id).await
    }

    async fn source_secret(&self, id: Uuid) -> Result<SecretString> {
        self.sealed_source_secret(id).await
    }

    async fn rotate_source_secret(&self, id: Uuid, secret: &SecretString) -> Result<()> {
        self.replace_source_secret(id, secret).await
    }

    async fn source_by_secret(&self, secret: &str) -> Result<Option<Source>> {
        self.find_source_by_secret(secret).await
    }

    async fn open_incident_for_key(
        &self,
        source_id: Uuid,
        dedup_key: &str,
    ) -> Result<Option<Incident>> {
        self.select_open_incident_for_key(source_id, dedup_key)
            .await
    }

    async fn create_incident_for_key(
        &self,
        source_id: Uuid,
        dedup_key: &str,
        incident: &Incident,
        timeline: &[TimelineEntry],
        links: &[NewLink],
    ) -> Result<()> {
        self.insert_incident_for_key(source_id, dedup_key, incident, timeline, links)
            .await
    }

    async fn create_routing_rule(&self, rule: &RoutingRule) -> Result<()> {
        self.insert_rule(rule).await
    }

    async fn get_routing_rule(&self, id: Uuid) -> Result<RoutingRule> {
        self.select_rule(id).await
    }

    async fn list_routing_rules(&self, team_ids: Option<&[Uuid]>) -> Result<Vec<RoutingRule>> {
        self.select_rules(team_ids).await
    }

    async fn update_routing_rule(&self, rule: &RoutingRule) -> Result<()> {
        self.write_rule(rule).await
    }

    async fn delete_routing_rule(&self, id: Uuid) -> Result<()> {
        self.remove_rule(id).await
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        self.select_tokens().await
    }

    async fn revoke_token(&self, id: Uuid) -> Result<()> {
        self.mark_token_revoked(id).await
    }

    // --- web UI user administration: see users.rs --------------------------------------
    async fn get_user(&self, id: Uuid) -> Result<User> {
        users::get(&self.pool, id).await
    }

    async fn delete_user(&self, id: Uuid) -> Result<()> {
        users::delete(&self.pool, id).await
    }

    async fn set_user_password(
        &self,
        id: Uuid,
        password_hash: &str,
        keep_session: Option<&str>,
    ) -> Result<()> {
        users::set_password(&self.pool, id, password_hash, keep_session).await
    }
}
