//! What every handler shares. Built once by the binary, cloned per request (all `Arc`s).

use std::sync::Arc;

use sha2::{Digest, Sha256};
use snowbound_engine::EngineWaker;
use snowbound_store::Store;

use crate::incidents::IncidentService;

#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) waker: EngineWaker,
    /// Base of the links back to Snowbound (`{public_url}/incidents/{id}`).
    pub(crate) public_url: Arc<str>,
    pub(crate) admin_token_hash: [u8; 32],
}

impl AppState {
    /// `admin_token_hash` is [`hash_token`] of the admin token: the plain token need not
    /// stay in memory once the binary has printed it.
    pub fn new(
        store: Arc<dyn Store>,
        waker: EngineWaker,
        public_url: impl Into<String>,
        admin_token_hash: [u8; 32],
    ) -> Self {
        AppState {
            store,
            waker,
            public_url: public_url.into().trim_end_matches('/').into(),
            admin_token_hash,
        }
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
