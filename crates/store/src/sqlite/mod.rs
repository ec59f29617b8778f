//! The SQLite backend: one node, WAL mode, every multi-statement change in one
//! `BEGIN IMMEDIATE` transaction (taking the write lock up front, so a transaction
//! never fails half-way on a lock upgrade).

mod links;
mod rows;
mod sources;
mod users;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use snowbound_core::routing::RoutingRule;
use snowbound_core::source::Source;
use snowbound_core::{Incident, Integration, Team, TimelineEntry};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection, SqlitePool};
use uuid::Uuid;

use crate::crypto::SecretBox;
use crate::types::*;
use crate::{Completion, LeaseOutcome, Result, Session, Store, StoreError, User, API_CALLS_KEPT};
use rows::{ms, to_json};

const KEY_CHECK: &str = "secret_key_check";
const KEY_CHECK_TEXT: &str = "snowbound";

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Every transaction that writes goes through this one connection. SQLite admits one
    /// writer at a time anyway; queueing for it here is fair and wakes the next writer at
    /// once, where contending in SQLite's busy handler sleeps for milliseconds.
    writer: SqlitePool,
    secrets: SecretBox,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`), applies the
    /// migrations and checks that `secrets` opens what is already stored.
    pub async fn open(url: &str, secrets: SecretBox) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        if let Some(parent) = options.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| StoreError::Database(e.into()))?;
            }
        }
        // A connection to a local file cannot go stale, and the default ping before each
        // acquire is a second round trip to the connection's thread for every query.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(options.clone())
            .await?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        let store = SqliteStore {
            pool,
            writer,
            secrets,
        };
        store.migrate().await?;
        store.check_secret_key().await?;
        Ok(store)
    }

    pub async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await?;
        Ok(())
    }

    /// A node whose key cannot open what is stored refuses to start instead of
    /// writing secrets nobody else can read.
    async fn check_secret_key(&self) -> Result<()> {
        match self.get_meta(KEY_CHECK).await? {
            Some(sealed) => match self.secrets.open(&sealed) {
                Ok(_) => Ok(()),
                Err(e) => Err(StoreError::Secret(e)),
            },
            None => {
                let sealed = self.secrets.seal(&SecretString::from(KEY_CHECK_TEXT));
                self.set_meta(KEY_CHECK, &sealed).await
            }
        }
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

pub(crate) fn conflict_on(e: sqlx::Error, field: &'static str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict { field },
        _ => StoreError::Database(e),
    }
}

fn found<T>(row: Option<T>) -> Result<T> {
    row.ok_or(StoreError::NotFound)
}

async fn insert_timeline(
    conn: &mut SqliteConnection,
    incident_id: Uuid,
    entries: &[TimelineEntry],
) -> Result<()> {
    for entry in entries {
        sqlx::query(
            "INSERT INTO timeline (incident_id, at, actor, kind, detail) VALUES (?, ?, ?, ?, ?)",
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
    conn: &mut SqliteConnection,
    incident: &Incident,
    timeline: &[TimelineEntry],
    links: &[NewLink],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO incidents (id, team_id, title, description, severity, status, attributes, \
         resolve_comment, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    for link in links {
        links::upsert(&mut *conn, link).await?;
    }
    Ok(())
}

async fn insert_api_calls(
    conn: &mut SqliteConnection,
    integration_id: Uuid,
    incident_id: Option<Uuid>,
    calls: &[ApiCallRecord],
) -> Result<()> {
    let integration = integration_id.to_string();
    let incident = incident_id.map(|id| id.to_string());
    for call in calls {
        sqlx::query(
            "INSERT INTO api_calls (integration_id, incident_id, at, method, url, status, duration_ms, \
             request_body, response_body, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&integration)
        .bind(&incident)
        .bind(ms(call.at))
        .bind(&call.method)
        .bind(&call.url)
        .bind(call.status.map(i64::from))
        .bind(call.duration_ms as i64)
        .bind(&call.request_body)
        .bind(&call.response_body)
        .bind(&call.error)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Keeps the newest `API_CALLS_KEPT` calls of one integration.
async fn prune_api_calls(conn: &mut SqliteConnection, integration_id: Uuid) -> Result<()> {
    sqlx::query(
        "DELETE FROM api_calls WHERE integration_id = ?1 AND id <= \
         (SELECT id FROM api_calls WHERE integration_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )
    .bind(integration_id.to_string())
    .bind(API_CALLS_KEPT)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const INTEGRATION_COLUMNS: &str =
    "i.*, (SELECT COUNT(*) FROM links l WHERE l.integration_id = i.id AND l.state = 'parked') \
     + (SELECT COUNT(*) FROM links l WHERE l.integration_id = i.id AND l.state = 'retrying' \
     AND l.attempts > 0) AS failing_links";

#[async_trait]
impl Store for SqliteStore {
    async fn get_meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_team(&self, team: &Team) -> Result<()> {
        sqlx::query("INSERT INTO teams (id, name, created_at) VALUES (?, ?, ?)")
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
            sqlx::query("SELECT * FROM teams WHERE id = ?")
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
            "INSERT INTO api_tokens (id, name, hash, team_ids, created_at) VALUES (?, ?, ?, ?, ?)",
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
        let row = sqlx::query("SELECT * FROM api_tokens WHERE hash = ? AND revoked_at IS NULL")
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
             password_sealed, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        let mut tx = self.write_tx().await?;
        let updated = sqlx::query(
            "UPDATE integrations SET display_name = ?, root_team_id = ?, team_ids = ?, forwarding = ?, \
             settings = ?, password_sealed = COALESCE(?, password_sealed), failing = NULL, paused_until = 0, \
             updated_at = ? WHERE id = ?",
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
        // ServiceNow rejected: every link gets another look, now.
        sqlx::query(
            "UPDATE links SET rev = rev + 1, state = 'pending', attempts = 0, next_attempt_at = ? \
             WHERE integration_id = ?",
        )
        .bind(ms(Utc::now()))
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_integration(&self, id: Uuid) -> Result<()> {
        let deleted = sqlx::query("DELETE FROM integrations WHERE id = ?")
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
            "SELECT {INTEGRATION_COLUMNS} FROM integrations i WHERE i.id = ?"
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
            "SELECT i.*, 0 AS failing_links FROM integrations i ORDER BY i.display_name, i.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| rows::integration(row).map(|record| record.integration))
            .collect()
    }

    async fn integration_password(&self, id: Uuid) -> Result<SecretString> {
        let sealed: String = found(
            sqlx::query_scalar("SELECT password_sealed FROM integrations WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )?;
        self.secrets.open(&sealed).map_err(StoreError::Secret)
    }

    async fn pause_integration(&self, id: Uuid, until: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE integrations SET paused_until = MAX(paused_until, ?) WHERE id = ?")
            .bind(ms(until))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn mark_integration_failing(&self, id: Uuid, error: &str) -> Result<()> {
        sqlx::query("UPDATE integrations SET failing = ? WHERE id = ?")
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
        links: &[NewLink],
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_incident(&mut tx, incident, timeline, links).await?;
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
        let mut tx = self.write_tx().await?;
        let updated = sqlx::query(
            "UPDATE incidents SET title = ?, description = ?, severity = ?, status = ?, attributes = ?, \
             resolve_comment = ?, updated_at = ? WHERE id = ? AND updated_at = ?",
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
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM incidents WHERE id = ?")
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
        tx.commit().await?;
        Ok(())
    }

    async fn get_incident(&self, id: Uuid) -> Result<Incident> {
        let row = sqlx::query("SELECT * FROM incidents WHERE id = ?")
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
            query.push(" AND team_id IN (");
            let mut ids = query.separated(", ");
            for team in teams {
                ids.push_bind(team.to_string());
            }
            query.push(")");
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
        let rows = sqlx::query("SELECT * FROM timeline WHERE incident_id = ? ORDER BY id")
            .bind(incident_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::timeline_entry).collect()
    }

    async fn forward(&self, link: &NewLink, timeline: &TimelineEntry) -> Result<()> {
        let mut tx = self.write_tx().await?;
        links::upsert(&mut tx, link).await?;
        insert_timeline(&mut tx, link.incident_id, std::slice::from_ref(timeline)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn links_of_incident(&self, incident_id: Uuid) -> Result<Vec<Link>> {
        let rows = sqlx::query("SELECT * FROM links WHERE incident_id = ? ORDER BY created_at")
            .bind(incident_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::link).collect()
    }

    async fn get_link(&self, incident_id: Uuid, integration_id: Uuid) -> Result<Link> {
        let row = sqlx::query("SELECT * FROM links WHERE incident_id = ? AND integration_id = ?")
            .bind(incident_id.to_string())
            .bind(integration_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        rows::link(&found(row)?)
    }

    async fn retry_link(&self, incident_id: Uuid, integration_id: Uuid) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE links SET rev = rev + 1, state = 'pending', attempts = 0, next_attempt_at = ? \
             WHERE incident_id = ? AND integration_id = ?",
        )
        .bind(ms(Utc::now()))
        .bind(incident_id.to_string())
        .bind(integration_id.to_string())
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn recreate_link(&self, incident_id: Uuid, integration_id: Uuid) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE links SET sys_id = NULL, number = NULL, servicenow_state = NULL, \
             pushed = '{}', create_unsure = 1, rev = rev + 1, state = 'pending', attempts = 0, \
             next_attempt_at = ? \
             WHERE incident_id = ? AND integration_id = ? AND state = 'parked' \
             AND sys_id IS NOT NULL",
        )
        .bind(ms(Utc::now()))
        .bind(incident_id.to_string())
        .bind(integration_id.to_string())
        .execute(&self.pool)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn lease_due_links(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Lease>> {
        links::lease_due(&self.writer, &self.pool, owner, now, lease_until, limit).await
    }

    async fn complete_lease(&self, lease: &Lease, outcome: &LeaseOutcome) -> Result<bool> {
        links::complete(&self.writer, lease, outcome).await
    }

    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>> {
        let due: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(MAX(l.next_attempt_at, l.lease_until, i.paused_until)) FROM links l \
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
        if calls.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        insert_api_calls(&mut tx, integration_id, incident_id, calls).await?;
        prune_api_calls(&mut tx, integration_id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn complete_leases(&self, done: &[Completion]) -> Result<Vec<bool>> {
        let mut tx = self.write_tx().await?;
        let now = Utc::now();
        let mut ours = Vec::with_capacity(done.len());
        let mut touched = std::collections::BTreeMap::new();
        for c in done {
            let integration_id = c.lease.link.integration_id;
            if !c.calls.is_empty() {
                insert_api_calls(
                    &mut tx,
                    integration_id,
                    Some(c.lease.link.incident_id),
                    &c.calls,
                )
                .await?;
            }
            ours.push(links::complete_in(&mut tx, &c.lease, &c.outcome, now).await?);
            let succeeded = matches!(c.outcome, LeaseOutcome::Synced { .. });
            *touched.entry(integration_id).or_insert(false) |= succeeded;
        }
        // Once per integration and batch, not per reconcile.
        for (integration_id, succeeded) in touched {
            prune_api_calls(&mut tx, integration_id).await?;
            if succeeded {
                links::mark_success(&mut tx, integration_id, now).await?;
            }
        }
        tx.commit().await?;
        Ok(ours)
    }

    async fn list_api_calls(&self, filter: &ApiCallFilter) -> Result<Vec<ApiCallRecord>> {
        let mut query = sqlx::QueryBuilder::new("SELECT * FROM api_calls WHERE 1 = 1");
        if let Some(id) = filter.integration_id {
            query
                .push(" AND integration_id = ")
                .push_bind(id.to_string());
        }
        if let Some(id) = filter.incident_id {
            query.push(" AND incident_id = ").push_bind(id.to_string());
        }
        if let Some(teams) = &filter.visible_team_ids {
            query.push(" AND (");
            if filter.include_without_incident {
                query.push("incident_id IS NULL OR ");
            }
            query.push("incident_id IN (SELECT id FROM incidents WHERE team_id IN (");
            if teams.is_empty() {
                query.push("NULL");
            }
            let mut listed = query.separated(", ");
            for team in teams {
                listed.push_bind(team.to_string());
            }
            query.push(")))");
        }
        match filter.status_class {
            Some(0) => {
                query.push(" AND status IS NULL");
            }
            Some(class) => {
                query
                    .push(" AND status >= ")
                    .push_bind(i64::from(class) * 100)
                    .push(" AND status < ")
                    .push_bind(i64::from(class) * 100 + 100);
            }
            None => {}
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(filter.limit.unwrap_or(API_CALLS_KEPT as u32)));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(rows::api_call).collect()
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
