//! What every handler shares. Built once by the binary, cloned per request (all `Arc`s).

use std::sync::Arc;

use snowbound_engine::EngineWaker;
use snowbound_servicenow::{Client, ClientConfig};
use snowbound_services::incidents::IncidentService;
use snowbound_services::integrations::IntegrationService;
use snowbound_services::Services;
use snowbound_store::Store;

pub use snowbound_services::teams::hash_token;

#[derive(Clone)]
pub struct AppState {
    /// For reads that only shape an answer (views, the API call log).
    pub(crate) store: Arc<dyn Store>,
    pub(crate) services: Services,
    /// Base of the links back to Snowbound (`{public_url}/incidents/{id}`).
    pub(crate) public_url: Arc<str>,
    pub(crate) admin_token_hash: [u8; 32],
    /// For test connection and choice lists only; the engine has its own for syncing.
    pub(crate) servicenow: Client,
    /// Where the ingest route counts alerts and pokes; `None` counts nothing.
    pub(crate) metrics: Option<crate::metrics::Metrics>,
    /// The domain of email sources' addresses; the public URL's host unless set.
    pub(crate) smtp_domain: Arc<str>,
    /// The node's engine, for what it knows now (adaptive concurrency); weak, so the
    /// router does not keep a stopped engine alive. `None` without an engine.
    pub(crate) engine: Option<snowbound_engine::WeakEngine>,
}

impl AppState {
    /// `admin_token_hash` is [`hash_token`] of the admin token: the plain token need not
    /// stay in memory once the binary has printed it. Uses a ServiceNow client with the
    /// default configuration; see [`AppState::with_servicenow_client`].
    ///
    /// # Panics
    /// When the TLS backend cannot initialise (the process could not call ServiceNow at all).
    pub fn new(
        store: Arc<dyn Store>,
        waker: EngineWaker,
        public_url: impl Into<String>,
        admin_token_hash: [u8; 32],
    ) -> Self {
        let servicenow =
            Client::new(ClientConfig::default()).expect("the ServiceNow HTTP client builds");
        let public_url: String = public_url.into().trim_end_matches('/').into();
        let smtp_domain = url::Url::parse(&public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "localhost".into());
        AppState {
            services: Services::new(store.clone(), waker, servicenow.instance_policy()),
            store,
            public_url: public_url.into(),
            admin_token_hash,
            servicenow,
            metrics: None,
            smtp_domain: smtp_domain.into(),
            engine: None,
        }
    }

    /// Shows what `engine` knows now in the answers (an integration's `sync`).
    pub fn with_engine(mut self, engine: &snowbound_engine::Engine) -> Self {
        self.engine = Some(engine.downgrade());
        self
    }

    pub(crate) fn engine(&self) -> Option<snowbound_engine::Engine> {
        self.engine
            .as_ref()
            .and_then(snowbound_engine::WeakEngine::upgrade)
    }

    /// Counts ingested alerts and pokes in `metrics` (the registry `/metrics` serves).
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The domain email sources' addresses are at (`SNOWBOUND_SMTP_DOMAIN`).
    pub fn with_smtp_domain(mut self, domain: impl Into<String>) -> Self {
        self.smtp_domain = domain.into().into();
        self
    }

    pub(crate) fn smtp_domain(&self) -> &str {
        &self.smtp_domain
    }

    /// Alerts per second each source may send (`None`: no limit).
    pub fn with_ingest_rate_limit(
        mut self,
        alerts_per_second: Option<std::num::NonZeroU32>,
    ) -> Self {
        self.services = self.services.with_ingest_rate_limit(alerts_per_second);
        self
    }

    /// Shares the binary's client (one connection pool) or sets other timeouts; the
    /// client's rule for local instances is also the one settings are saved under.
    pub fn with_servicenow_client(mut self, client: Client) -> Self {
        self.services.policy = client.instance_policy();
        self.servicenow = client;
        self
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The services' cache of sources, teams and routing: the binary hands it what the
    /// change listener hears, and shares it with the engine.
    pub fn lookups(&self) -> Arc<snowbound_services::lookups::Lookups> {
        Arc::clone(&self.services.lookups)
    }

    pub fn incidents(&self) -> IncidentService {
        self.services.incidents()
    }

    pub(crate) fn integrations(&self) -> IntegrationService {
        self.services.integrations()
    }
}
