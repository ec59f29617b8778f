//! What every handler shares. Built once by the binary, cloned per request (all `Arc`s).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use snowbound_engine::EngineWaker;
use snowbound_servicenow::{Client, ClientConfig};
use snowbound_store::Store;

use crate::choices::ChoiceCache;
use crate::incidents::IncidentService;

#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) waker: EngineWaker,
    /// Base of the links back to Snowbound (`{public_url}/incidents/{id}`).
    pub(crate) public_url: Arc<str>,
    pub(crate) admin_token_hash: [u8; 32],
    /// For test connection and choice lists only; the engine has its own for syncing.
    pub(crate) servicenow: Client,
    pub(crate) choice_cache: Arc<ChoiceCache>,
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
        AppState {
            store,
            waker,
            public_url: public_url.into().trim_end_matches('/').into(),
            admin_token_hash,
            servicenow,
            choice_cache: Arc::default(),
        }
    }

    /// Shares the binary's client (one connection pool) or sets other timeouts.
    pub fn with_servicenow_client(mut self, client: Client) -> Self {
        self.servicenow = client;
        self
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub fn incidents(&self) -> IncidentService {
        IncidentService::new(self.store.clone(), self.waker.clone())
    }
}

/// SHA-256 of a bearer token: what is stored and compared, never the token itself.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
