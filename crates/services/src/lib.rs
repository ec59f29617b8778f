//! Snowbound's application services: every change to incidents, integrations, alert
//! sources, routing rules, teams, tokens and users goes through here, whoever asks (the
//! HTTP API, the web UI, alert sources, and the engine's inbound direction). Commands
//! are typed values; answers are domain types or a [`ServiceError`], which the HTTP
//! layer maps to its status codes in one place.
//!
//! Below the HTTP layer and beside the engine: this crate knows nothing of HTTP and does
//! not call ServiceNow, so the engine can apply changes through the same services.

pub mod accounts;
pub mod audit;
pub mod caller;
pub mod choice_cache;
pub mod error;
pub mod held_keys;
pub mod inbound;
pub mod incident_search;
pub mod incidents;
pub mod ingest;
pub mod ingest_limit;
pub mod integration_auth;
pub mod integrations;
pub mod lookups;
pub mod routing_links;
pub mod rules;
pub mod scope;
pub mod sources;
pub mod teams;
pub mod waker;

use std::num::NonZeroU32;
use std::sync::Arc;

use snowbound_core::instance_url::InstancePolicy;
use snowbound_store::{GroupCommit, Store};

pub use caller::{Caller, Scope};
pub use error::{ServiceError, ServiceResult};
pub use incidents::{Change, IncidentService, NewIncident};
pub use waker::EngineWaker;

/// Everything the services share; cheap to clone (all `Arc`s).
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub waker: EngineWaker,
    /// Where integrations may send credentials (the ServiceNow client's rule).
    pub policy: InstancePolicy,
    pub choice_cache: Arc<choice_cache::ChoiceCache>,
    /// The node's cache of sources, teams and routing, which every service writing
    /// them tells.
    pub lookups: Arc<lookups::Lookups>,
    /// The node's group committer for incident writes (none outside a Tokio runtime).
    pub writer: Option<GroupCommit>,
    /// Alerts per second each source may send to this node.
    pub ingest_limits: Arc<ingest_limit::IngestLimits>,
}

/// Alerts per second per source unless `SNOWBOUND_INGEST_RATE_LIMIT` says otherwise:
/// far above any healthy source, low enough that a runaway one cannot take the node.
pub const DEFAULT_INGEST_RATE_LIMIT: u32 = 1000;

/// Two committers: while one batch commits, the next one is being gathered and its
/// transaction begun (on SQLite it then waits for the one writer).
const GROUP_COMMITTERS: usize = 2;

impl Services {
    pub fn new(store: Arc<dyn Store>, waker: EngineWaker, policy: InstancePolicy) -> Self {
        let writer = tokio::runtime::Handle::try_current()
            .ok()
            .map(|_| GroupCommit::start(store.clone(), GROUP_COMMITTERS));
        Services {
            store,
            waker,
            policy,
            choice_cache: Arc::default(),
            lookups: Arc::default(),
            writer,
            ingest_limits: Arc::new(ingest_limit::IngestLimits::new(NonZeroU32::new(
                DEFAULT_INGEST_RATE_LIMIT,
            ))),
        }
    }

    /// Alerts per second per source; `None` (or 0 in the setting) admits everything.
    pub fn with_ingest_rate_limit(mut self, alerts_per_second: Option<NonZeroU32>) -> Self {
        self.ingest_limits = Arc::new(ingest_limit::IngestLimits::new(alerts_per_second));
        self
    }

    pub fn incidents(&self) -> IncidentService {
        let service = IncidentService::new(self.store.clone(), self.waker.clone())
            .with_lookups(self.lookups.clone());
        match &self.writer {
            Some(writer) => service.with_group_commit(writer.clone()),
            None => service,
        }
    }

    pub fn integrations(&self) -> integrations::IntegrationService {
        integrations::IntegrationService::new(
            self.store.clone(),
            self.waker.clone(),
            self.policy,
            self.choice_cache.clone(),
            self.lookups.clone(),
        )
    }

    pub fn inbound(&self) -> inbound::InboundService {
        inbound::InboundService::new(self.store.clone(), self.waker.clone())
    }

    pub fn sources(&self) -> sources::SourceService {
        sources::SourceService::new(self.store.clone(), self.lookups.clone())
    }

    pub fn rules(&self) -> rules::RuleService {
        rules::RuleService::new(self.store.clone(), self.lookups.clone())
    }

    pub fn teams(&self) -> teams::TeamService {
        teams::TeamService::new(self.store.clone())
    }

    pub fn audit(&self) -> audit::AuditService {
        audit::AuditService::new(self.store.clone())
    }

    pub fn accounts(&self) -> accounts::AccountService {
        accounts::AccountService::new(self.store.clone())
    }
}
