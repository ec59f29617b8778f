//! The engine's loop: lease what is due, reconcile each lease on its own task within
//! the concurrency limits, sleep until the next link is due or a change wakes it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use snowbound_servicenow::Client;
use snowbound_store::{Lease, LeaseOutcome, Store, StoreError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::api_log::api_call_records;
use crate::backoff::Backoff;
use crate::reconcile::{Reconciler, SideEffect};
use crate::waker::EngineWaker;

const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Names this node's leases, so a log line or a stuck lease says whose it is.
    pub node_id: String,
    /// Base of the links back to incidents written into ServiceNow descriptions.
    pub public_url: String,
    pub backoff: Backoff,
    /// How long a lease lasts; a node that dies loses its links to others after this.
    /// Must exceed the longest reconcile (a lookup plus a create, each bounded by the
    /// client's request timeout).
    pub lease_for: Duration,
    pub max_in_flight: usize,
    /// Calls in flight to one integration at most: instances limit concurrent API
    /// transactions per user, and ordering per incident comes from the lease anyway.
    pub per_integration_concurrency: usize,
    /// The first pause after a 429 without `Retry-After`; doubles while 429s continue.
    pub rate_limit_cooldown: Duration,
    pub rate_limit_cooldown_max: Duration,
    /// Fallback wake-up when nothing signals a change.
    pub poll_interval: Duration,
    /// On shutdown, how long in-flight reconciles may finish before they are abandoned
    /// (their leases then expire and the work is redone).
    pub shutdown_grace: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            node_id: format!("node-{}", &Uuid::new_v4().simple().to_string()[..8]),
            public_url: "http://127.0.0.1:8080".into(),
            backoff: Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(600),
            },
            lease_for: Duration::from_secs(90),
            max_in_flight: 32,
            per_integration_concurrency: 8,
            rate_limit_cooldown: Duration::from_secs(5),
            rate_limit_cooldown_max: Duration::from_secs(300),
            poll_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The sync engine of one node. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    client: Client,
    waker: EngineWaker,
    config: EngineConfig,
    gates: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
    /// Consecutive 429s without `Retry-After`, per integration.
    rate_limited: Mutex<HashMap<Uuid, u32>>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        client: Client,
        waker: EngineWaker,
        config: EngineConfig,
    ) -> Self {
        Engine {
            inner: Arc::new(Inner {
                store,
                client,
                waker,
                config,
                gates: Mutex::new(HashMap::new()),
                rate_limited: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn waker(&self) -> EngineWaker {
        self.inner.waker.clone()
    }

    /// Runs until `shutdown` completes, then lets in-flight reconciles finish within the
    /// grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let inner = &self.inner;
        let config = &inner.config;
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        tracing::info!(node = %config.node_id, "sync engine started");
        loop {
            let now = Utc::now();
            let free = config.max_in_flight.saturating_sub(tasks.len());
            let mut leased = 0;
            if free > 0 {
                let owner = format!("{}:{}", config.node_id, Uuid::new_v4().simple());
                let lease_until = now + config.lease_for;
                match inner
                    .store
                    .lease_due_links(&owner, now, lease_until, free as u32)
                    .await
                {
                    Ok(leases) => {
                        leased = leases.len();
                        for lease in leases {
                            tasks.spawn(Arc::clone(inner).reconcile(lease));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "leasing links failed"),
                }
            }
            let wake_at = if free > 0 && leased == free {
                None // more may be waiting: lease again as soon as a slot frees
            } else {
                let next = inner.next_due().await;
                let floor = if leased == 0 {
                    Duration::from_millis(5)
                } else {
                    Duration::ZERO
                };
                Some(next.clamp(floor, config.poll_interval))
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = inner.waker.woken() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(wake_at.unwrap_or(config.poll_interval)), if wake_at.is_some() => {}
            }
        }
        tracing::info!(in_flight = tasks.len(), "sync engine stopping");
        let drained = tokio::time::timeout(config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                abandoned = tasks.len(),
                "reconciles abandoned at shutdown; their leases expire and the work is redone"
            );
            tasks.abort_all();
        }
    }
}

impl Inner {
    async fn next_due(&self) -> Duration {
        match self.store.next_due_at().await {
            Ok(Some(at)) => (at - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            Ok(None) => self.config.poll_interval,
            Err(e) => {
                tracing::warn!(error = %e, "reading the next due link failed");
                self.config.poll_interval
            }
        }
    }

    fn gate(&self, integration_id: Uuid) -> Arc<Semaphore> {
        let mut gates = self.gates.lock().expect("gates lock");
        Arc::clone(gates.entry(integration_id).or_insert_with(|| {
            Arc::new(Semaphore::new(
                self.config.per_integration_concurrency.max(1),
            ))
        }))
    }

    async fn reconcile(self: Arc<Self>, lease: Lease) {
        let integration_id = lease.link.integration_id;
        let incident_id = lease.link.incident_id;
        let _permit = self
            .gate(integration_id)
            .acquire_owned()
            .await
            .expect("gates are never closed");

        let record = match self.store.get_integration(integration_id).await {
            Ok(record) => record,
            // Deleted meanwhile: its links went with it.
            Err(StoreError::NotFound) => return,
            Err(e) => {
                return tracing::warn!(error = %e, "loading an integration failed; the lease will expire")
            }
        };
        if record.health.failing.is_some() || record.health.paused_until.is_some() {
            return self.complete(&lease, LeaseOutcome::Release).await;
        }
        let password = match self.store.integration_password(integration_id).await {
            Ok(password) => password,
            Err(e) => {
                let error = format!("the stored password cannot be read: {e}");
                self.mark_failing(integration_id, &error).await;
                return self.complete(&lease, LeaseOutcome::Release).await;
            }
        };

        let reconciler = Reconciler {
            client: &self.client,
            backoff: self.config.backoff,
            public_url: &self.config.public_url,
        };
        let done = reconciler
            .run(&lease.link, &lease.incident, &record.integration, password)
            .await;

        let calls = api_call_records(integration_id, Some(incident_id), done.calls);
        if let Err(e) = self
            .store
            .record_api_calls(integration_id, Some(incident_id), &calls)
            .await
        {
            tracing::warn!(error = %e, "recording API calls failed");
        }
        match done.effect {
            SideEffect::None => {
                self.rate_limited
                    .lock()
                    .expect("rate_limited lock")
                    .remove(&integration_id);
            }
            SideEffect::Pause(retry_after) => {
                // An hourly rate-limit window can answer with a long Retry-After; honour
                // it, but not beyond an hour, so a bogus header cannot stop syncing for days.
                let wait = retry_after
                    .map(|wait| wait.min(MAX_RETRY_AFTER))
                    .unwrap_or_else(|| self.growing_cooldown(integration_id));
                tracing::info!(%integration_id, wait_ms = wait.as_millis() as u64, "ServiceNow rate limit: pausing the integration");
                let until = Utc::now() + wait;
                if let Err(e) = self.store.pause_integration(integration_id, until).await {
                    tracing::warn!(error = %e, "pausing an integration failed");
                }
            }
            SideEffect::Failing(error) => self.mark_failing(integration_id, &error).await,
        }
        match &done.outcome {
            LeaseOutcome::Retry { error, .. } | LeaseOutcome::Park { error } => {
                tracing::info!(%incident_id, %integration_id, %error, "sync did not go through")
            }
            _ => tracing::debug!(%incident_id, %integration_id, "reconciled"),
        }
        self.complete(&lease, done.outcome).await;
    }

    fn growing_cooldown(&self, integration_id: Uuid) -> Duration {
        let mut counts = self.rate_limited.lock().expect("rate_limited lock");
        let count = counts.entry(integration_id).or_insert(0);
        let wait = Backoff {
            base: self.config.rate_limit_cooldown,
            max: self.config.rate_limit_cooldown_max,
        }
        .ceiling(*count);
        *count += 1;
        wait
    }

    async fn mark_failing(&self, integration_id: Uuid, error: &str) {
        tracing::warn!(%integration_id, %error, "integration failing; its links wait for new settings");
        if let Err(e) = self
            .store
            .mark_integration_failing(integration_id, error)
            .await
        {
            tracing::warn!(error = %e, "marking an integration failing failed");
        }
    }

    async fn complete(&self, lease: &Lease, outcome: LeaseOutcome) {
        match self.store.complete_lease(lease, &outcome).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(incident_id = %lease.link.incident_id, "lease lost before the reconcile finished")
            }
            Err(e) => {
                tracing::warn!(error = %e, "recording a reconcile failed; the lease will expire and it is redone")
            }
        }
    }
}
