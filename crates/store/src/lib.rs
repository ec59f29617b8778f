//! Snowbound's persistence. Every query lives behind [`Store`] so SQLite (one node) and
//! PostgreSQL (several nodes) pass one suite. Operations are coarse on purpose:
//! each is one transaction, so an incident change and the link revisions it bumps can
//! never be half-written.
//!
//! The implementation is written once ([`SqlStore`], one SQL text per statement, organised
//! by entity under `sql/`); the few things the two databases do differently sit behind
//! one seam, [`Dialect`], implemented by `sqlite.rs` and `postgres/`.

mod accounts;
mod crypto;
mod group_commit;
mod inbound;
mod journal;
mod postgres;
mod sql;
mod sqlite;
pub mod testing;
mod types;

pub use accounts::{Session, User};
pub use crypto::{SecretBox, SecretKeyError};
pub use group_commit::{GroupCommit, MAX_BATCH};
pub use inbound::{
    AdoptRecord, InboundIncidentChange, InboundLink, InboundWrite, PokeLease, PokeOutcome,
    PollLease, PollResult, PollState, StandingNote,
};
pub use journal::{JournalItem, JournalState};
pub use postgres::{Heard, Migrations, PostgresBackend, PostgresStore, CHANNEL as CHANGE_CHANNEL};
pub use sql::{Dialect, SqlStore};
pub use sqlite::{SqliteBackend, SqliteStore};
pub use types::*;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use snowbound_core::login_limits::{LimitedBy, LoginLimits};
use snowbound_core::routing::RoutingRule;
use snowbound_core::source::Source;
use snowbound_core::{Credentials, FieldMap, Incident, Integration, Team, TimelineEntry};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// Unique constraint: the value of `field` is taken.
    #[error("{field} is already taken")]
    Conflict { field: &'static str },
    /// Optimistic concurrency: somebody changed the row since it was read; re-read and retry.
    #[error("changed concurrently")]
    Stale,
    /// A keyed create was refused: this unresolved incident holds the dedup key (the
    /// holder comes along, so the writer can update it without reading it again).
    #[error("an unresolved incident holds the dedup key")]
    KeyHeld(Box<Incident>),
    #[error("stored secret cannot be decrypted with this key: {0}")]
    Secret(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database schema does not fit this binary (e.g. migrations not applied).
    #[error("{0}")]
    Schema(String),
    /// A SQLite database is used by one process only; another one holds its lock file.
    #[error("another Snowbound process is using {}", .0.display())]
    InUse(std::path::PathBuf),
    /// The database could not be prepared on disk (its directory or lock file).
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[async_trait]
pub trait Store: Send + Sync + 'static {
    // --- meta -------------------------------------------------------------------------
    /// A small key/value of instance facts (admin token hash, …).
    async fn get_meta(&self, key: &str) -> Result<Option<String>>;
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;
    /// A cheap real write (one row of meta, committed like every other write): whether
    /// the database takes writes now, for health checks.
    async fn check_writable(&self) -> Result<()>;
    /// Tells every node sharing the database (this one included) `message`, not empty,
    /// through the change listener (`PostgresStore::spawn_change_listener`); a no-op on
    /// SQLite, whose one process needs nobody told. Sent on its own, after whatever
    /// it is about has committed.
    async fn announce(&self, message: &str) -> Result<()>;

    // --- teams ------------------------------------------------------------------------
    async fn create_team(&self, team: &Team) -> Result<()>;
    async fn list_teams(&self) -> Result<Vec<Team>>;
    async fn get_team(&self, id: Uuid) -> Result<Team>;

    // --- tokens -----------------------------------------------------------------------
    async fn create_token(&self, token: &ApiToken) -> Result<()>;
    async fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>>;
    /// Active (not revoked) tokens.
    async fn list_tokens(&self) -> Result<Vec<ApiToken>>;
    /// [`StoreError::NotFound`] when no such token is active.
    async fn revoke_token(&self, id: Uuid) -> Result<()>;

    // --- integrations -----------------------------------------------------------------
    async fn create_integration(
        &self,
        integration: &Integration,
        secrets: &Credentials,
    ) -> Result<()>;
    /// Replaces the settings; a secret left `None` keeps the stored one. Secrets the
    /// settings' auth type does not use are dropped (on create too). Clears the failing
    /// state, wakes parked links and bumps every link so new settings are applied.
    async fn update_integration(
        &self,
        integration: &Integration,
        secrets: &Credentials,
    ) -> Result<()>;
    async fn delete_integration(&self, id: Uuid) -> Result<()>;
    async fn get_integration(&self, id: Uuid) -> Result<IntegrationRecord>;
    async fn list_integrations(&self) -> Result<Vec<IntegrationRecord>>;
    /// The integrations' settings without their health: what routing decides with on
    /// every incident change, so it skips the per-integration link counts.
    async fn list_integration_settings(&self) -> Result<Vec<Integration>>;
    /// The integration's secrets, opened; a secret never set is `None`.
    async fn integration_credentials(&self, id: Uuid) -> Result<Credentials>;
    /// `Retry-After` reached: no calls to this integration before `until`.
    async fn pause_integration(&self, id: Uuid, until: DateTime<Utc>) -> Result<()>;
    /// 401: links wait until the settings change.
    async fn mark_integration_failing(&self, id: Uuid, error: &str) -> Result<()>;

    // --- incidents --------------------------------------------------------------------
    /// Inserts the incident with its first timeline entries and the links it gets at once.
    async fn create_incident(
        &self,
        incident: &Incident,
        timeline: &[TimelineEntry],
        links: &[NewLink],
    ) -> Result<()>;
    /// Writes `incident` if its stored `updated_at` still equals `expected_updated_at`
    /// (else [`StoreError::Stale`]), appends timeline entries, bumps every link of the
    /// incident and inserts `new_links` — all in one transaction.
    async fn update_incident(
        &self,
        incident: &Incident,
        expected_updated_at: DateTime<Utc>,
        timeline: &[TimelineEntry],
        new_links: &[NewLink],
    ) -> Result<()>;
    /// Group commit: every write in one transaction, one commit (and one fsync) for all.
    /// Each write gets its own answer; one refused (`Stale`, `NotFound`, `KeyHeld` with
    /// the incident holding the key) wrote nothing and the others still commit. `Err` when the transaction
    /// itself failed: then none was written, and the caller may retry them one by one.
    async fn write_incidents(&self, writes: &[IncidentWrite]) -> Result<Vec<Result<()>>>;
    async fn get_incident(&self, id: Uuid) -> Result<Incident>;
    async fn list_incidents(&self, filter: &IncidentFilter) -> Result<Vec<Incident>>;
    async fn timeline(&self, incident_id: Uuid) -> Result<Vec<TimelineEntry>>;
    /// A comment on an incident: a timeline entry of kind `comment`, and its links
    /// bumped so each record's journal gets it (`NotFound` for no such incident).
    async fn add_comment(
        &self,
        incident_id: Uuid,
        actor: &str,
        text: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Timeline entries of journaled kinds (`core::mapping::JOURNAL_KINDS`) the link
    /// has not written to its record yet, oldest first, at most `limit`.
    async fn journal_pending(
        &self,
        incident_id: Uuid,
        integration_id: Uuid,
        limit: u32,
    ) -> Result<Vec<JournalItem>>;
    /// Records how far a journal write of `timeline_id` got, only while `lease` is held
    /// (false when it is not: then nothing is written).
    async fn mark_journal(
        &self,
        lease: &Lease,
        timeline_id: i64,
        state: JournalState,
    ) -> Result<bool>;

    // --- links and their leases -------------------------------------------------------
    /// A forward: creates the link or, when it exists, bumps it (and replaces its frozen
    /// snapshot when one is given), waking it if parked. Appends the timeline entry.
    async fn forward(&self, link: &NewLink, timeline: &TimelineEntry) -> Result<()>;
    /// Ordered by creation, then integration id.
    async fn links_of_incident(&self, incident_id: Uuid) -> Result<Vec<Link>>;
    async fn get_link(&self, incident_id: Uuid, integration_id: Uuid) -> Result<Link>;
    /// A user asks to try a parked or backing-off link now.
    async fn retry_link(&self, incident_id: Uuid, integration_id: Uuid) -> Result<()>;
    /// A user asks to create the ServiceNow record of a parked link again (it was deleted
    /// there): forgets the record and what was pushed, marks the create unsure (so the
    /// engine looks it up by correlation id before creating) and makes the link due.
    /// [`StoreError::NotFound`] unless the link is parked and has a record.
    async fn recreate_link(&self, incident_id: Uuid, integration_id: Uuid) -> Result<()>;
    /// Leases up to `limit` links that need a reconcile, are due, not leased (or whose
    /// lease expired) and whose integration is neither paused nor failing; only links of
    /// `only_integration` when given. The most overdue come first.
    async fn lease_due_links(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        only_integration: Option<Uuid>,
    ) -> Result<Vec<Lease>>;
    /// Extends each lease still held by its owner (lease_owner = lease.owner AND
    /// lease_until > now) to `until`; per lease, whether it was still held. One transaction.
    async fn renew_leases(
        &self,
        leases: &[Lease],
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<bool>>;
    /// Start-up of the only process on a database (SQLite): ends every lease at once. A
    /// link that carried an owner and has no record yet is marked create_unsure (a create
    /// may have happened), exactly as lease_due_links does for an expired lease. The dead
    /// process's poke and poll leases end too. Returns how many link leases were ended.
    async fn release_all_leases(&self) -> Result<u64>;
    /// Records the end of a reconcile; ignored (returns false) when the lease was lost.
    async fn complete_lease(&self, lease: &Lease, outcome: &LeaseOutcome) -> Result<bool>;
    /// Records several finished reconciles in one transaction: each one's API calls,
    /// then its outcome as [`Store::complete_lease`] would; per completion, whether the
    /// lease was still ours. One commit instead of two per reconcile is most of what a
    /// busy engine costs the database.
    async fn complete_leases(&self, done: &[Completion]) -> Result<Vec<bool>>;
    /// When the next link becomes due (for sleeping until then), if any is waiting.
    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>>;

    // --- API call log -----------------------------------------------------------------
    /// Appends calls and keeps only the newest `API_CALLS_KEPT` per integration.
    async fn record_api_calls(
        &self,
        integration_id: Uuid,
        incident_id: Option<Uuid>,
        calls: &[ApiCallRecord],
    ) -> Result<()>;
    async fn list_api_calls(&self, filter: &ApiCallFilter) -> Result<Vec<ApiCallRecord>>;

    // --- metrics ----------------------------------------------------------------------
    /// Incidents by status and links by integration and stored state (grouped counts).
    async fn state_counts(&self) -> Result<StateCounts>;

    // --- web UI users and sessions ----------------------------------------------------
    async fn count_users(&self) -> Result<i64>;
    /// [`StoreError::Conflict`] on `email` when taken (ASCII case-insensitive).
    async fn create_user(&self, user: &User) -> Result<()>;
    /// Creates `user` only while no user exists at all, atomically, so two people racing
    /// through the one-time setup page cannot both become the first admin.
    async fn create_first_user(&self, user: &User) -> Result<bool>;
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    /// Ordered by email, ignoring ASCII case.
    async fn list_users(&self) -> Result<Vec<User>>;
    async fn get_user(&self, id: Uuid) -> Result<User>;
    /// Deletes the user and every session of theirs in one transaction, so a deleted
    /// user's open browser stops working with the next request.
    /// [`StoreError::NotFound`] when no such user exists.
    async fn delete_user(&self, id: Uuid) -> Result<()>;
    /// Replaces the password hash and ends every session of the user but `keep_session`
    /// (the admin's own, when resetting their own password), in one transaction: whoever
    /// knew the old password is logged out with it.
    async fn set_user_password(
        &self,
        id: Uuid,
        password_hash: &str,
        keep_session: Option<&str>,
    ) -> Result<()>;
    async fn create_session(&self, session: &Session) -> Result<()>;
    /// The unexpired session with this id and its user.
    async fn session(&self, id: &str, now: DateTime<Utc>) -> Result<Option<(Session, User)>>;
    async fn delete_session(&self, id: &str) -> Result<()>;
    /// An admin changes whether a user is an admin and which teams they see. Their
    /// sessions stay: every request reads the user afresh.
    /// [`StoreError::NotFound`] when no such user exists.
    async fn update_user_access(&self, id: Uuid, is_admin: bool, team_ids: &[Uuid]) -> Result<()>;

    // --- login limits -------------------------------------------------------------------
    /// Counts one more wrong password under each key and locks the keys whose count
    /// `limits` says must wait, in one transaction; keys quiet for `limits.forget_after`
    /// are forgotten first. The latest lock this failure set, if it set one.
    async fn count_login_failure(
        &self,
        keys: &[(String, LimitedBy)],
        limits: &LoginLimits,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>>;
    /// The latest lock among `keys` still running at `now`.
    async fn login_locked_until(
        &self,
        keys: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>>;
    /// Forgets the failures under `key`, or under every key (`None`); how many keys went.
    async fn clear_login_failures(&self, key: Option<&str>) -> Result<u64>;

    // --- audit trail ------------------------------------------------------------------
    /// Appends one change and keeps only the newest `AUDIT_EVENTS_KEPT` events.
    async fn record_audit(&self, event: &snowbound_core::audit::NewAuditEvent) -> Result<()>;
    /// Newest first.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
    ) -> Result<Vec<snowbound_core::audit::AuditEvent>>;

    // --- alert sources and their dedup keys -------------------------------------------
    /// The ingest secret is stored twice: hashed (to find the source) and sealed with
    /// the instance key (so its URL can be shown again).
    async fn create_source(&self, source: &Source, secret: &SecretString) -> Result<()>;
    async fn get_source(&self, id: Uuid) -> Result<Source>;
    /// `None` = every team.
    async fn list_sources(&self, team_ids: Option<&[Uuid]>) -> Result<Vec<Source>>;
    /// Name, severity map and the kind's settings; team and kind never change.
    async fn update_source(&self, source: &Source) -> Result<()>;
    /// A Grafana source's shared secret, sealed; `None` removes it.
    async fn set_source_hmac_secret(&self, id: Uuid, secret: Option<&SecretString>) -> Result<()>;
    async fn source_hmac_secret(&self, id: Uuid) -> Result<Option<SecretString>>;
    /// Keeps a body a `json` source received (cut to [`PAYLOAD_MAX_BYTES`]), dropping
    /// all but the newest [`PAYLOADS_KEPT`].
    async fn keep_source_payload(
        &self,
        source_id: Uuid,
        received_at: DateTime<Utc>,
        body: &[u8],
    ) -> Result<()>;
    /// The kept payloads, newest first.
    async fn source_payloads(&self, source_id: Uuid) -> Result<Vec<KeptPayload>>;
    async fn delete_source(&self, id: Uuid) -> Result<()>;
    async fn source_secret(&self, id: Uuid) -> Result<SecretString>;
    /// The old secret stops working when this commits.
    async fn rotate_source_secret(&self, id: Uuid, secret: &SecretString) -> Result<()>;
    async fn source_by_secret(&self, secret: &str) -> Result<Option<Source>>;
    /// The incident `dedup_key` last opened for `source_id`, unless it is resolved.
    async fn open_incident_for_key(
        &self,
        source_id: Uuid,
        dedup_key: &str,
    ) -> Result<Option<Incident>>;
    /// [`Store::create_incident`] that also binds the key to the new incident, in one
    /// transaction; [`StoreError::Conflict`] on `dedup_key` when an unresolved incident
    /// holds the key already (the caller updates that one instead).
    async fn create_incident_for_key(
        &self,
        source_id: Uuid,
        dedup_key: &str,
        incident: &Incident,
        timeline: &[TimelineEntry],
        links: &[NewLink],
    ) -> Result<()>;

    // --- routing rules ----------------------------------------------------------------
    async fn create_routing_rule(&self, rule: &RoutingRule) -> Result<()>;
    async fn get_routing_rule(&self, id: Uuid) -> Result<RoutingRule>;
    /// Ordered by team, then position: the order of evaluation. `None` = every team.
    async fn list_routing_rules(&self, team_ids: Option<&[Uuid]>) -> Result<Vec<RoutingRule>>;
    async fn update_routing_rule(&self, rule: &RoutingRule) -> Result<()>;
    async fn delete_routing_rule(&self, id: Uuid) -> Result<()>;
    /// Numbers the team's rules 0, 1, 2… in the order of `rule_ids`, in one transaction;
    /// [`StoreError::Conflict`] on `rule_ids` unless it lists each of the team's rules
    /// exactly once (then nothing moves).
    async fn reorder_routing_rules(&self, team_id: Uuid, rule_ids: &[Uuid]) -> Result<()>;
    /// The rules that fired for the incident so far: they do not fire again.
    async fn fired_rules(&self, incident_id: Uuid) -> Result<Vec<Uuid>>;
    /// History rows written outside an incident write (discarded alerts).
    async fn record_firings(&self, firings: &[RuleFiring]) -> Result<()>;
    /// Newest first; `None` = every team.
    async fn routing_history(
        &self,
        team_ids: Option<&[Uuid]>,
        limit: u32,
    ) -> Result<Vec<RuleFiring>>;

    // --- inbound sync: pokes, polls, per-link state (issue #15) -----------------------
    /// Queues a read of `sys_id` for `source_id`, coalesced: while one waits (or is
    /// being read) for that record, another poke only raises its revision.
    async fn enqueue_poke(
        &self,
        source_id: Uuid,
        sys_id: &str,
        table: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Leases up to `limit` due pokes that nobody holds, most overdue first.
    async fn lease_due_pokes(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PokeLease>>;
    /// Ends a poke's lease; false when the lease was lost (another owner holds it).
    async fn complete_poke(
        &self,
        lease: &PokeLease,
        outcome: &PokeOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// The poke's revision now: a read sent after this covers every poke up to it, so the
    /// reader takes it as its lease's `rev` right before the call (`None`: no such poke).
    async fn poke_rev(&self, source_id: Uuid, sys_id: &str) -> Result<Option<i64>>;
    /// Pokes of `source_id` waiting or being read.
    async fn count_pokes(&self, source_id: Uuid) -> Result<i64>;
    /// Polls `source_id` every `interval_ms`, or (`None`) no longer, keeping its
    /// watermark and last result.
    async fn set_poll_schedule(&self, source_id: Uuid, interval_ms: Option<i64>) -> Result<()>;
    /// Leases up to `limit` sources due for a poll that nobody is polling.
    async fn lease_due_polls(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PollLease>>;
    /// Records a poll and schedules the next; false when the lease was lost.
    async fn complete_poll(&self, lease: &PollLease, result: &PollResult) -> Result<bool>;
    async fn poll_state(&self, source_id: Uuid) -> Result<Option<PollState>>;
    /// The link of `integration_id` holding record `sys_id`, with its inbound state.
    async fn inbound_link(&self, integration_id: Uuid, sys_id: &str)
        -> Result<Option<InboundLink>>;
    /// Writes one inbound decision: the incident change (optimistic as
    /// [`Store::update_incident`]: `Stale` when it changed meanwhile), the link's
    /// `pushed` merge, notes and applied `sys_mod_count`, all in one transaction.
    async fn apply_inbound(&self, write: &InboundWrite) -> Result<()>;
    /// The drift and re-assertion notes standing on the integration's links, the most
    /// recently changed links first, at most `limit` links' worth.
    async fn standing_notes(&self, integration_id: Uuid, limit: u32) -> Result<Vec<StandingNote>>;
    /// Opens a ServiceNow-born incident with its link adopting the record, in one
    /// transaction; [`StoreError::Conflict`] on `sys_id` when a link of the integration
    /// holds the record already (two reads of one new record open one incident).
    async fn adopt_record(&self, adopt: &AdoptRecord) -> Result<()>;
    /// The records the integration's links adopted, of incidents not resolved or
    /// changed since `since`: what a poll reads by sys_id, since they carry no mark of
    /// Snowbound's. At most `limit`, the most recently changed first.
    async fn adopted_sys_ids(
        &self,
        integration_id: Uuid,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>>;
}

/// The API call log keeps this many calls per integration.
pub const API_CALLS_KEPT: i64 = 1000;

/// Audit events kept (all objects together); older ones are pruned on insert.
pub const AUDIT_EVENTS_KEPT: i64 = 10_000;

/// A finished reconcile for [`Store::complete_leases`].
#[derive(Debug, Clone)]
pub struct Completion {
    pub lease: Lease,
    pub outcome: LeaseOutcome,
    pub calls: Vec<ApiCallRecord>,
}

/// Outcome of a reconcile, written by [`Store::complete_lease`].
#[derive(Debug, Clone)]
pub enum LeaseOutcome {
    /// ServiceNow now holds `sent` (merged into `pushed`); the record is `sys_id`/`number`.
    Synced {
        sys_id: String,
        number: String,
        sent: FieldMap,
        servicenow_state: Option<String>,
    },
    /// Nothing to send.
    UpToDate,
    /// Try again at `at`. `create_unsure` = a create may have been applied, so the next
    /// attempt looks the record up by correlation_id before creating; `unsure_sent` is
    /// what that create sent, kept as `pushed` so a record found later is diffed against
    /// it (an agent's edit meanwhile is not overwritten by a blind re-send).
    Retry {
        at: DateTime<Utc>,
        error: String,
        create_unsure: bool,
        unsure_sent: FieldMap,
    },
    /// Rejected by ServiceNow: waits for a settings change or a user's retry.
    Park { error: String },
    /// Credentials refused or the integration paused: give the link back untouched.
    Release,
}
