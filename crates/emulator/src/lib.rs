//! A ServiceNow Table API emulator, strict enough that a client which works against it
//! works against a real instance. Facts: `docs/servicenow/TABLE_API.md` and
//! `docs/servicenow/AUTH_AND_INBOUND.md` (in this repository); choices made where the
//! facts are unsure: `README.md`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use snowbound_emulator::{Emulator, EmulatorConfig, Fault};
//! let emu = Emulator::start(EmulatorConfig::default()).await?;
//! emu.add_fault(Fault::status("POST", "/api/now/table/incident", 503));
//! println!("{}", emu.base_url()); // http://127.0.0.1:PORT, user admin:admin
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

pub use semaphores::ApiSemaphores;
mod act_as;
mod auth;
mod business_rules;
mod choices;
mod control;
mod control_auth;
mod errors;
mod faults;
mod html;
mod identity;
mod incident;
mod oauth;
mod render;
mod schema;
mod semaphores;
mod server;
mod store;

/// The encoded-query language lives in its own pure crate, so the fuzz target for it builds
/// without the emulator's HTTP stack.
pub use snowbound_encoded_query as query;
mod table_api;
mod writes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use act_as::ActAsError;
pub use auth::{RateLimit, User, UserParseError};
pub use business_rules::{BusinessRule, Delivery};
pub use faults::{Fault, FaultAction, ReceivedRequest};
pub use identity::{property, ApiKey, OAuthClient, SpecParseError, BASIC_AUTH_ROLE};
pub use server::{serve, serve_with_shutdown};
pub use store::JournalEntry;

use server::Shared;

/// How an emulator instance behaves.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Users allowed in with Basic auth. Empty means the single user `admin:admin:admin`.
    pub users: Vec<User>,
    /// Refuse Resolved/Closed without resolution code and notes (§3.5). Default on.
    pub data_policy: bool,
    /// A close_code that is not an active sys_choice counts as empty for the data policy
    /// (§3.4 pitfall). Default on.
    pub inactive_close_code_is_empty: bool,
    /// Tables extending incident: `name` or `name:PREFIX` (own number prefix; the default
    /// `INC` shares incident's number sequence).
    pub extra_tables: Vec<String>,
    /// Base latency added to every Table API request (benchmarks of a "real" instance).
    pub latency: Duration,
    /// OAuth clients that may call `/oauth_token.do` (AUTH_AND_INBOUND.md §1.2, §1.3).
    pub oauth_clients: Vec<OAuthClient>,
    /// Lifespan of issued access tokens. Default 1,800 s (§1.2).
    pub access_token_lifespan: Duration,
    /// Lifespan of issued refresh tokens. Default 100 days (§1.3).
    pub refresh_token_lifespan: Duration,
    /// System properties over the defaults (see [`property`]): client credentials grant
    /// off, token parameters in the POST body only, Basic restriction not enforced.
    pub properties: BTreeMap<String, String>,
    /// REST API Key records (§1.4).
    pub api_keys: Vec<ApiKey>,
    /// A REST API Access Policy lets API keys in to the Table API (§1.4). Default off, so
    /// keys are refused until a test creates the policy.
    pub api_key_policy: bool,
    /// Outbound business rules posting `{sys_id, table}` after insert and update
    /// (AUTH_AND_INBOUND.md §2.2).
    pub business_rules: Vec<BusinessRule>,
    /// The `API_INT` semaphore pool: at most `slots` Table API requests run at once,
    /// `queue` more wait, the rest get a 429 without `Retry-After`. `None`: unlimited.
    pub api_semaphores: Option<ApiSemaphores>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            users: vec![User::new("admin", "admin", &["admin"])],
            data_policy: true,
            inactive_close_code_is_empty: true,
            extra_tables: Vec::new(),
            latency: Duration::ZERO,
            oauth_clients: Vec::new(),
            access_token_lifespan: Duration::from_secs(1800),
            refresh_token_lifespan: Duration::from_secs(100 * 24 * 3600),
            properties: BTreeMap::new(),
            api_keys: Vec::new(),
            api_key_policy: false,
            business_rules: Vec::new(),
            api_semaphores: None,
        }
    }
}

impl EmulatorConfig {
    pub(crate) fn effective_users(&self) -> Vec<User> {
        if self.users.is_empty() {
            EmulatorConfig::default().users
        } else {
            self.users.clone()
        }
    }
}

/// A running emulator. Cloning gives another handle to the same instance; the server
/// stops on [`Emulator::shutdown`] or when the last handle is dropped.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    handle: Arc<server::ServerHandle>,
}

pub type Record = BTreeMap<String, String>;

impl Emulator {
    /// Starts on 127.0.0.1 with an OS-chosen port.
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Emulator> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    pub async fn start_on(addr: SocketAddr, config: EmulatorConfig) -> std::io::Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (shared, handle) = server::spawn(listener, config);
        Ok(Emulator {
            shared,
            addr,
            handle: Arc::new(handle),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Raw stored values of a table's records in creation order (`incident` includes the
    /// records of tables extending it, as the Table API does).
    pub fn records(&self, table: &str) -> Vec<Record> {
        let data = self.shared.data();
        match data.def(table) {
            Some(def) => data.visible(def).cloned().collect(),
            None => Vec::new(),
        }
    }

    pub fn record(&self, table: &str, sys_id: &str) -> Option<Record> {
        let data = self.shared.data();
        let def = data.def(table)?;
        data.get(def, sys_id).cloned()
    }

    pub fn records_by_correlation_id(&self, table: &str, correlation_id: &str) -> Vec<Record> {
        self.records(table)
            .into_iter()
            .filter(|r| r.get("correlation_id").map(String::as_str) == Some(correlation_id))
            .collect()
    }

    /// Journal entries (work notes, comments) of one record, oldest first.
    pub fn journal(&self, table: &str, sys_id: &str) -> Vec<JournalEntry> {
        let data = self.shared.data();
        if data.def(table).is_none() {
            return Vec::new();
        }
        data.journal_of(sys_id).to_vec()
    }

    /// sys_id of a configured user's `sys_user` record (the value of `opened_by` etc.).
    pub fn user_sys_id(&self, name: &str) -> Option<String> {
        self.shared.data().user_sys_id(name).map(str::to_string)
    }

    /// Requests received (oldest first, capped; see [`Emulator::dropped_requests`]).
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.control().log.entries.iter().cloned().collect()
    }

    /// Removes and returns the logged requests, oldest first. A benchmark drains the log
    /// as it runs, so no request is lost to the cap and none is seen twice.
    pub fn take_requests(&self) -> Vec<ReceivedRequest> {
        std::mem::take(&mut self.shared.control().log.entries).into()
    }

    /// How many old log entries were discarded to keep the log bounded.
    pub fn dropped_requests(&self) -> u64 {
        self.shared.control().log.dropped
    }

    pub fn add_fault(&self, fault: Fault) {
        self.shared.control().faults.add(fault);
    }

    pub fn clear_faults(&self) {
        self.shared.control().faults.clear();
    }

    /// Latency added to every Table API request from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.control().latency = latency;
    }

    /// Registers (or replaces, by client_id) an OAuth client.
    pub fn add_oauth_client(&self, client: OAuthClient) {
        self.shared.auth().add_client(client);
    }

    /// Sets a system property, e.g. [`property::CLIENT_CREDENTIALS_ENABLED`] to `"true"`.
    pub fn set_property(&self, name: &str, value: &str) {
        self.shared
            .auth()
            .properties
            .insert(name.to_string(), value.to_string());
    }

    pub fn property(&self, name: &str) -> Option<String> {
        self.shared.auth().properties.get(name).cloned()
    }

    /// Enforces (or stops enforcing) the Basic authentication restriction (§1.1).
    pub fn set_basic_auth_restriction(&self, enforce: bool) {
        self.set_property(
            property::BASIC_AUTH_RESTRICTION_ENFORCE,
            if enforce { "true" } else { "false" },
        );
    }

    /// Lifespans of tokens issued from now on.
    pub fn set_token_lifespans(&self, access: Duration, refresh: Duration) {
        let mut auth = self.shared.auth();
        auth.access_lifespan = access;
        auth.refresh_lifespan = refresh;
    }

    /// The instance forgets every access and refresh token ("unknown token" from now on).
    pub fn revoke_tokens(&self) {
        self.shared.auth().revoke_tokens();
    }

    /// Every access token issued so far is expired now (refresh tokens too with
    /// `refresh_too`): the next Bearer call answers 401.
    pub fn expire_tokens(&self, refresh_too: bool) {
        self.shared.auth().expire_tokens(refresh_too);
    }

    /// Tokens issued so far per grant type (`password`, `refresh_token`,
    /// `client_credentials`).
    pub fn tokens_issued(&self) -> BTreeMap<String, u64> {
        self.shared.auth().issued.clone()
    }

    /// The access and refresh tokens the instance holds now, for tests proving that no
    /// token leaks into a client's answers, logs or files.
    pub fn token_values(&self) -> Vec<String> {
        let auth = self.shared.auth();
        auth.access_tokens
            .keys()
            .chain(auth.refresh_tokens.keys())
            .cloned()
            .collect()
    }

    pub fn add_api_key(&self, key: ApiKey) {
        self.shared.auth().add_api_key(key);
    }

    /// Creates (or removes) the REST API Access Policy that lets API keys in (§1.4).
    pub fn set_api_key_policy(&self, exists: bool) {
        self.shared.auth().api_key_policy = exists;
    }

    /// Adds a user, or replaces the one with that name (roles, password, flags); its
    /// `sys_user` row follows.
    pub fn upsert_user(&self, user: User) {
        self.shared.data().upsert_user(&user);
        self.shared.auth().upsert_user(user);
    }

    /// Registers an outbound business rule; it fires for writes from now on, whoever
    /// makes them (Table API callers and [`Emulator::update_as`] alike).
    pub fn add_business_rule(&self, rule: BusinessRule) {
        self.shared.control().business_rules.push(rule);
    }

    pub fn clear_business_rules(&self) {
        self.shared.control().business_rules.clear();
    }

    /// Posts the business rules made so far, in the order they finished (capped like
    /// the request log). A post still in flight is not here yet.
    pub fn business_rule_deliveries(&self) -> Vec<Delivery> {
        self.shared
            .control()
            .deliveries
            .entries
            .iter()
            .cloned()
            .collect()
    }

    /// How many business-rule posts failed (no answer or not 2xx) and were dropped.
    pub fn failed_business_rule_deliveries(&self) -> u64 {
        self.shared.control().deliveries.failed
    }

    /// Creates a record as `user` would through the UI (an agent opening an incident):
    /// business rules, data policy and sys fields apply, ACLs do not. Returns the stored
    /// record.
    pub fn create_as(
        &self,
        user: &str,
        table: &str,
        fields: serde_json::Value,
    ) -> Result<Record, ActAsError> {
        act_as::write(&self.shared, user, table, None, &fields)
    }

    /// Updates a record as `user` would through the UI: `sys_updated_by` becomes `user`,
    /// `sys_updated_on` the current second, `sys_mod_count` rises by one, journal fields
    /// (`work_notes`, `comments`) add entries by `user`, business rules fire.
    pub fn update_as(
        &self,
        user: &str,
        table: &str,
        sys_id: &str,
        fields: serde_json::Value,
    ) -> Result<Record, ActAsError> {
        act_as::write(&self.shared, user, table, Some(sys_id), &fields)
    }

    /// Back to the state just after start: records, journal, faults, latency, request log,
    /// rate-limit windows, number sequences, business rules and their deliveries, and users, OAuth clients, tokens, API keys
    /// and properties as configured.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops accepting, closes open connections and waits for the server task.
    pub async fn shutdown(self) {
        self.handle.stop().await;
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|e| e.into_inner())
}
