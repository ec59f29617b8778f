//! The engine's loop: lease what is due, reconcile each lease on its own task within
//! the concurrency limits, sleep until the next link is due or a change wakes it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use snowbound_servicenow::Client;
use snowbound_store::{
    ApiCallRecord, Completion, IntegrationRecord, Lease, LeaseOutcome, Store, StoreError,
};
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::api_log::api_call_records;
use crate::backoff::Backoff;
use crate::rate_limit::RateLimiter;
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
    /// Calls per second to one integration at most, over any one-second window; `None`
    /// = only the instance's 429s slow us down.
    pub per_integration_rate_limit: Option<u32>,
    /// The first pause after a 429 without `Retry-After`; doubles while 429s continue.
    pub rate_limit_cooldown: Duration,
    pub rate_limit_cooldown_max: Duration,
    /// Fallback wake-up when nothing signals a change.
    pub poll_interval: Duration,
    /// A record updated less than this long ago is not updated again before this much
    /// time has passed: the changes of a flapping alert go out together in one call
    /// instead of one call each. The first change after a quiet spell, and every create,
    /// go at once. Zero = never wait.
    pub settle: Duration,
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
            per_integration_rate_limit: None,
            rate_limit_cooldown: Duration::from_secs(5),
            rate_limit_cooldown_max: Duration::from_secs(300),
            poll_interval: Duration::from_secs(5),
            settle: Duration::from_millis(500),
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
    limiters: Mutex<HashMap<Uuid, Arc<RateLimiter>>>,
    /// Consecutive 429s without `Retry-After`, per integration.
    rate_limited: Mutex<HashMap<Uuid, u32>>,
    /// Pauses and failures this node caused, so reconciles of the same lease batch
    /// (whose integration was read before) stop at once instead of calling on.
    blocked: Mutex<HashMap<Uuid, Block>>,
    completions: mpsc::UnboundedSender<Finished>,
    completions_rx: Mutex<Option<mpsc::UnboundedReceiver<Finished>>>,
}

/// An integration as one lease batch sees it: read once per batch, not per link. A
/// settings change committed after the read bumps every link, so a link reconciled
/// with the old settings is reconciled again.
enum Loaded {
    Ready {
        record: Box<IntegrationRecord>,
        password: SecretString,
    },
    /// Deleted meanwhile: its links went with it.
    Gone,
    /// Reading it failed; the leases expire and the work is redone.
    Unavailable,
    PasswordUnreadable(String),
}

enum Block {
    PausedUntil(chrono::DateTime<Utc>),
    /// Failing with the settings of this time; newer settings lift it.
    Failing {
        settings_at: chrono::DateTime<Utc>,
    },
}

/// A completion and whom to tell once it is written.
type Finished = (Completion, oneshot::Sender<()>);

/// Completions are written in batches: reconciles finishing together share one
/// transaction, so the database commits once per batch instead of twice per link.
const COMPLETION_BATCH: usize = 256;

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        client: Client,
        waker: EngineWaker,
        config: EngineConfig,
    ) -> Self {
        let (completions, completions_rx) = mpsc::unbounded_channel();
        Engine {
            inner: Arc::new(Inner {
                store,
                client,
                waker,
                config,
                gates: Mutex::new(HashMap::new()),
                limiters: Mutex::new(HashMap::new()),
                rate_limited: Mutex::new(HashMap::new()),
                blocked: Mutex::new(HashMap::new()),
                completions,
                completions_rx: Mutex::new(Some(completions_rx)),
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
        let mut settling = JoinSet::new();
        let writer = inner
            .completions_rx
            .lock()
            .expect("completions lock")
            .take()
            .map(|rx| tokio::spawn(write_completions(Arc::clone(&inner.store), rx)));
        tokio::pin!(shutdown);
        tracing::info!(node = %config.node_id, "sync engine started");
        loop {
            let now = Utc::now();
            let free = config.max_in_flight.saturating_sub(tasks.len());
            // Leasing is a write, queued behind every other write. Under load, waiting
            // for a quarter of the slots to free up leases them with one statement
            // instead of one statement per finished reconcile.
            let lease_now =
                free > 0 && (free >= (config.max_in_flight / 4).max(1) || tasks.is_empty());
            let mut leased = 0;
            if lease_now {
                let owner = format!("{}:{}", config.node_id, Uuid::new_v4().simple());
                let lease_until = now + config.lease_for;
                match inner
                    .store
                    .lease_due_links(&owner, now, lease_until, free as u32, None)
                    .await
                {
                    Ok(leases) => {
                        leased = leases.len();
                        let mut loaded: HashMap<Uuid, Arc<Loaded>> = HashMap::new();
                        for lease in leases {
                            let id = lease.link.integration_id;
                            let integration = match loaded.get(&id) {
                                Some(l) => Arc::clone(l),
                                None => {
                                    let l = Arc::new(inner.load(id).await);
                                    loaded.insert(id, Arc::clone(&l));
                                    l
                                }
                            };
                            match inner.settle_until(&lease) {
                                // Waits outside the in-flight slots: a flapping incident
                                // must not hold back the others.
                                Some(at) => {
                                    settling.spawn(Arc::clone(inner).settle(
                                        lease,
                                        integration,
                                        at,
                                    ));
                                }
                                None => {
                                    tasks.spawn(Arc::clone(inner).reconcile(lease, integration));
                                }
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "leasing links failed"),
                }
            }
            let wake_at = if !lease_now || leased == free {
                None // more may be waiting: lease again as soon as slots free
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
                Some(_) = settling.join_next(), if !settling.is_empty() => {}
                _ = tokio::time::sleep(wake_at.unwrap_or(config.poll_interval)), if wake_at.is_some() => {}
            }
        }
        tracing::info!(in_flight = tasks.len(), "sync engine stopping");
        let drained = tokio::time::timeout(config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
            while settling.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                abandoned = tasks.len(),
                "reconciles abandoned at shutdown; their leases expire and the work is redone"
            );
            tasks.abort_all();
        }
        // Every finished reconcile waited for its completion to be written.
        if let Some(writer) = writer {
            writer.abort();
        }
    }
}

async fn write_completions(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Finished>) {
    let mut batch = Vec::with_capacity(COMPLETION_BATCH);
    while rx.recv_many(&mut batch, COMPLETION_BATCH).await > 0 {
        let (done, acks): (Vec<Completion>, Vec<oneshot::Sender<()>>) = batch.drain(..).unzip();
        match store.complete_leases(&done).await {
            Ok(ours) => {
                for (c, ours) in done.iter().zip(ours) {
                    if !ours {
                        tracing::warn!(incident_id = %c.lease.link.incident_id, "lease lost before the reconcile finished");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, reconciles = done.len(), "recording reconciles failed; their leases expire and they are redone")
            }
        }
        for ack in acks {
            let _ = ack.send(());
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

    fn limiter(&self, integration_id: Uuid) -> Option<Arc<RateLimiter>> {
        let per_second = self.config.per_integration_rate_limit?;
        let mut limiters = self.limiters.lock().expect("limiters lock");
        Some(Arc::clone(
            limiters
                .entry(integration_id)
                .or_insert_with(|| Arc::new(RateLimiter::new(per_second))),
        ))
    }

    async fn load(&self, integration_id: Uuid) -> Loaded {
        let record = match self.store.get_integration(integration_id).await {
            Ok(record) => record,
            Err(StoreError::NotFound) => return Loaded::Gone,
            Err(e) => {
                tracing::warn!(error = %e, "loading an integration failed; the lease will expire");
                return Loaded::Unavailable;
            }
        };
        match self.store.integration_password(integration_id).await {
            Ok(password) => Loaded::Ready {
                record: Box::new(record),
                password,
            },
            Err(e) => {
                Loaded::PasswordUnreadable(format!("the stored password cannot be read: {e}"))
            }
        }
    }

    /// When a leased link's record was updated too recently to update it again now.
    fn settle_until(&self, lease: &Lease) -> Option<tokio::time::Instant> {
        let settle = chrono::Duration::from_std(self.config.settle).ok()?;
        if settle.is_zero() || lease.link.sys_id.is_none() || lease.link.attempts > 0 {
            return None;
        }
        let wait = (lease.link.last_synced_at? + settle - Utc::now())
            .to_std()
            .ok()?;
        Some(tokio::time::Instant::now() + wait)
    }

    async fn settle(
        self: Arc<Self>,
        mut lease: Lease,
        loaded: Arc<Loaded>,
        at: tokio::time::Instant,
    ) {
        tokio::time::sleep_until(at).await;
        // The wait was for the changes made meanwhile: send the incident as it is now.
        // The link is read before the incident, so the revision marked as synced is
        // never newer than what is sent.
        let (incident_id, integration_id) = (lease.link.incident_id, lease.link.integration_id);
        if let Ok(link) = self.store.get_link(incident_id, integration_id).await {
            if let Ok(incident) = self.store.get_incident(incident_id).await {
                lease.rev = link.rev;
                lease.link = link;
                lease.incident = incident;
            }
        }
        self.reconcile(lease, loaded).await
    }

    async fn reconcile(self: Arc<Self>, lease: Lease, loaded: Arc<Loaded>) {
        let integration_id = lease.link.integration_id;
        let incident_id = lease.link.incident_id;
        let (record, password) = match &*loaded {
            Loaded::Ready { record, password } => (record, password.clone()),
            Loaded::Gone | Loaded::Unavailable => return,
            Loaded::PasswordUnreadable(error) => {
                self.mark_failing(integration_id, error).await;
                return self
                    .complete(lease, LeaseOutcome::Release, Vec::new())
                    .await;
            }
        };
        if record.health.failing.is_some() || record.health.paused_until.is_some() {
            return self
                .complete(lease, LeaseOutcome::Release, Vec::new())
                .await;
        }
        let permit = self
            .gate(integration_id)
            .acquire_owned()
            .await
            .expect("gates are never closed");
        if self.is_blocked(integration_id, record) {
            drop(permit);
            return self
                .complete(lease, LeaseOutcome::Release, Vec::new())
                .await;
        }

        let limiter = self.limiter(integration_id);
        let reconciler = Reconciler {
            client: &self.client,
            backoff: self.config.backoff,
            public_url: &self.config.public_url,
            limiter: limiter.as_deref(),
        };
        let done = reconciler
            .run(&lease.link, &lease.incident, &record.integration, password)
            .await;
        // The gate limits calls to the instance; recording the outcome is ours to wait for.
        drop(permit);

        let calls = api_call_records(integration_id, Some(incident_id), done.calls);
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
                self.block(integration_id, Block::PausedUntil(until));
                if let Err(e) = self.store.pause_integration(integration_id, until).await {
                    tracing::warn!(error = %e, "pausing an integration failed");
                }
            }
            SideEffect::Failing(error) => {
                let settings_at = record.integration.updated_at;
                self.block(integration_id, Block::Failing { settings_at });
                self.mark_failing(integration_id, &error).await
            }
        }
        match &done.outcome {
            LeaseOutcome::Retry { error, .. } | LeaseOutcome::Park { error } => {
                tracing::info!(%incident_id, %integration_id, %error, "sync did not go through")
            }
            _ => tracing::debug!(%incident_id, %integration_id, "reconciled"),
        }
        self.complete(lease, done.outcome, calls).await;
    }

    fn block(&self, integration_id: Uuid, block: Block) {
        self.blocked
            .lock()
            .expect("blocked lock")
            .insert(integration_id, block);
    }

    fn is_blocked(&self, integration_id: Uuid, record: &IntegrationRecord) -> bool {
        let mut blocked = self.blocked.lock().expect("blocked lock");
        let still = match blocked.get(&integration_id) {
            None => return false,
            Some(Block::PausedUntil(until)) => *until > Utc::now(),
            Some(Block::Failing { settings_at }) => record.integration.updated_at <= *settings_at,
        };
        if !still {
            blocked.remove(&integration_id);
        }
        still
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

    /// Hands the outcome to the batch writer and waits until it is written, so the
    /// in-flight count (and a graceful shutdown) covers the write too.
    async fn complete(&self, lease: Lease, outcome: LeaseOutcome, calls: Vec<ApiCallRecord>) {
        let (ack, written) = oneshot::channel();
        let completion = Completion {
            lease,
            outcome,
            calls,
        };
        if self.completions.send((completion, ack)).is_ok() {
            let _ = written.await;
        }
    }
}
