//! The engine's loop, as steps: lease a batch and start it ([`Worker::tick`]), sleep
//! until the next link is due, a change wakes us or a reconcile ends
//! ([`Worker::sleep_until_due`]); a heartbeat renews the leases held meanwhile. Tests
//! drive the steps one at a time; [`Engine::run`] loops over them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use snowbound_servicenow::Client;
use snowbound_store::{Lease, Store};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use crate::completions::{write_completions, Finished};
use crate::config::{heartbeat_interval, EngineConfig, CLOCK_SKEW_MARGIN};
use crate::integrations::Integrations;
use crate::job::Loaded;
use crate::leases::HeldLeases;
use crate::observe::{EngineObserver, Observer};
use snowbound_services::EngineWaker;

/// The sync engine of one node. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub client: Client,
    pub waker: EngineWaker,
    pub config: EngineConfig,
    pub integrations: Integrations,
    pub leases: HeldLeases,
    pub completions: mpsc::UnboundedSender<Finished>,
    completions_rx: Mutex<Option<mpsc::UnboundedReceiver<Finished>>>,
    /// Told of every ServiceNow call a reconcile made (the binary's metrics).
    pub call_observer: std::sync::OnceLock<CallObserver>,
    /// Told of pauses and sync lags (the binary's metrics).
    pub(crate) observer: Observer,
    /// The services' cache of teams and routing, for each reconcile's mapping context;
    /// unset, they are read from the store (a cache nobody tells of changes would lie).
    pub lookups: std::sync::OnceLock<Arc<snowbound_services::lookups::Lookups>>,
}

/// See [`Engine::downgrade`].
#[derive(Clone)]
pub struct WeakEngine(std::sync::Weak<Inner>);

impl WeakEngine {
    pub fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
}

/// Called with each ServiceNow call a reconcile made, as it goes to the API call log.
pub type CallObserver = Arc<dyn Fn(&snowbound_store::ApiCallRecord) + Send + Sync>;

/// What one [`Worker::tick`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    /// Links leased (each one's reconcile is started).
    pub leased: usize,
    /// Of those, how many wait out the settle window before their call.
    pub settling: usize,
    /// Some integration had more slots than were leased, or a lease filled every slot
    /// it asked for: more may be due as soon as a slot frees.
    pub more_waiting: bool,
}

/// The loop's state: reconciles in flight and in their settle wait.
pub struct Worker {
    inner: Arc<Inner>,
    in_flight: JoinSet<()>,
    settling: JoinSet<()>,
    writer: Option<JoinHandle<()>>,
}

impl Engine {
    pub fn new(
        store: Arc<dyn Store>,
        client: Client,
        waker: EngineWaker,
        config: EngineConfig,
    ) -> Self {
        let (completions, completions_rx) = mpsc::unbounded_channel();
        let observer = Observer::default();
        let integrations = Integrations::new(
            config.per_integration_concurrency,
            config.per_integration_rate_limit,
            crate::Backoff {
                base: config.rate_limit_cooldown,
                max: config.rate_limit_cooldown_max,
            },
        )
        .with_observer(observer.clone());
        let leases = HeldLeases::new(
            Arc::clone(&store),
            config.lease_for,
            config.call_timeout + CLOCK_SKEW_MARGIN,
        );
        Engine {
            inner: Arc::new(Inner {
                store,
                client,
                waker,
                config,
                integrations,
                leases,
                completions,
                completions_rx: Mutex::new(Some(completions_rx)),
                call_observer: std::sync::OnceLock::new(),
                observer,
                lookups: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Reports every ServiceNow call of a reconcile to `observer` (set once, before `run`).
    pub fn observe_calls(&self, observer: CallObserver) {
        let _ = self.inner.call_observer.set(observer);
    }

    /// Reads teams and routing rules through the services' cache (set once, before
    /// `run`; the services writing them must share it).
    pub fn share_lookups(&self, lookups: Arc<snowbound_services::lookups::Lookups>) {
        let _ = self.inner.lookups.set(lookups);
    }

    /// Reports pauses and sync lags to `observer` (set once, before `run`).
    pub fn observe(&self, observer: Arc<dyn EngineObserver>) {
        self.inner.observer.set(observer);
    }

    /// Adaptive concurrency of `integration` on this node, now.
    pub fn concurrency(&self, integration: Uuid) -> crate::Concurrency {
        self.inner.integrations.concurrency(integration)
    }

    pub fn waker(&self) -> EngineWaker {
        self.inner.waker.clone()
    }

    /// The loop's steps, to drive by hand. One worker per engine: the completion
    /// writer goes to the first.
    pub fn worker(&self) -> Worker {
        let writer = self
            .inner
            .completions_rx
            .lock()
            .expect("completions lock")
            .take()
            .map(|rx| {
                tokio::spawn(write_completions(
                    Arc::clone(&self.inner.store),
                    rx,
                    self.inner.observer.clone(),
                ))
            });
        Worker {
            inner: Arc::clone(&self.inner),
            in_flight: JoinSet::new(),
            settling: JoinSet::new(),
            writer,
        }
    }

    /// A handle that does not keep the engine alive: for what the engine itself holds
    /// (its observer), so no cycle keeps the store, and SQLite's lock, from going.
    pub fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }

    /// The inbound direction's steps (pokes and polls), to drive by hand.
    pub fn inbound_worker(&self) -> crate::InboundWorker {
        crate::InboundWorker::new(Arc::clone(&self.inner))
    }

    /// One heartbeat: renews every lease this node holds.
    pub async fn renew_leases(&self) {
        self.inner.leases.renew_all().await
    }

    /// How many leases this node holds now.
    pub fn leases_held(&self) -> usize {
        self.inner.leases.count()
    }

    /// Runs until `shutdown` completes, then lets in-flight reconciles finish within the
    /// grace period.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let config = &self.inner.config;
        let mut worker = self.worker();
        let heartbeat = tokio::spawn(heartbeat(Arc::clone(&self.inner)));
        // Inbound reads run beside the outbound loop: a poke must not wait for a
        // reconcile backlog, and an abandoned read leaves its poke queued.
        let mut inbound = self.inbound_worker();
        let inbound = tokio::spawn(async move {
            loop {
                let tick = inbound.tick().await;
                inbound.sleep(tick).await;
            }
        });
        tokio::pin!(shutdown);
        tracing::info!(node = %config.node_id, "sync engine started");
        loop {
            let tick = worker.tick().await;
            tokio::select! {
                _ = &mut shutdown => break,
                _ = worker.sleep_until_due(tick) => {}
            }
        }
        inbound.abort();
        worker.stop(config.shutdown_grace).await;
        heartbeat.abort();
        // Gone, not just told to go: they hold the store, and a node started next on
        // the same SQLite file needs its lock.
        let _ = inbound.await;
        let _ = heartbeat.await;
    }
}

/// Renews the node's leases every quarter lease, so a lease has at least three quarters
/// left whenever a call starts (see [`crate::check_lease`]).
async fn heartbeat(inner: Arc<Inner>) {
    let mut beat = tokio::time::interval(heartbeat_interval(inner.config.lease_for));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    loop {
        beat.tick().await;
        inner.leases.renew_all().await;
    }
}

impl Worker {
    /// Step one: lease what is due, as many links per integration as it has free call
    /// slots, and start a reconcile for each.
    pub async fn tick(&mut self) -> Tick {
        self.reap();
        let inner = &self.inner;
        let config = &inner.config;
        let mut free = config.max_in_flight.saturating_sub(self.in_flight.len());
        if free == 0 {
            return Tick {
                more_waiting: true,
                ..Tick::default()
            };
        }
        let owner = format!("{}:{}", config.node_id, Uuid::new_v4().simple());
        let now = Utc::now();
        let until = now + inner.leases.lease_for();
        let mut tick = Tick::default();
        let mut leased = Vec::new();
        if inner.integrations.all_idle() {
            // No slot taken anywhere: one statement for every integration.
            // Twice the smallest limit: each integration's slots and its queue.
            let limit = free.min(2 * inner.integrations.idle_lease_limit());
            let got = self.lease(&owner, now, until, limit, None).await;
            tick.more_waiting = got.len() == limit;
            leased.extend(got);
        } else {
            let integrations = match inner.store.list_integration_settings().await {
                Ok(list) => list,
                Err(e) => {
                    tracing::warn!(error = %e, "listing integrations failed");
                    return tick;
                }
            };
            for integration in integrations {
                let id = integration.id;
                let room = inner.integrations.lease_room(id);
                // Under load, waiting until half a limit's worth of room is free leases
                // it with one statement (one commit) instead of one per finished
                // reconcile; the queue keeps the slots busy meanwhile.
                let batch = (inner.integrations.limit(id) / 2).max(1);
                if free == 0
                    || room == 0
                    || inner.integrations.is_blocked(id, integration.updated_at)
                {
                    continue;
                }
                if room < batch {
                    tick.more_waiting = true;
                    continue;
                }
                let limit = room.min(free);
                let got = self.lease(&owner, now, until, limit, Some(id)).await;
                tick.more_waiting |= got.len() == limit;
                free -= got.len();
                leased.extend(got);
            }
        }
        tick.leased = leased.len();
        inner.leases.hold(&leased, until);
        tick.settling = self.start(leased).await;
        tick
    }

    async fn lease(
        &self,
        owner: &str,
        now: chrono::DateTime<Utc>,
        until: chrono::DateTime<Utc>,
        limit: usize,
        only: Option<Uuid>,
    ) -> Vec<Lease> {
        match self
            .inner
            .store
            .lease_due_links(owner, now, until, limit as u32, only)
            .await
        {
            Ok(leases) => leases,
            Err(e) => {
                tracing::warn!(error = %e, "leasing links failed");
                Vec::new()
            }
        }
    }

    /// Starts a reconcile per lease; each integration is read once per batch. Returns
    /// how many wait out the settle window.
    async fn start(&mut self, leases: Vec<Lease>) -> usize {
        let inner = &self.inner;
        let mut loaded: HashMap<Uuid, Arc<Loaded>> = HashMap::new();
        let mut settling = 0;
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
                // Waits outside the call slots: a flapping incident must not hold back
                // the others.
                Some(at) => {
                    settling += 1;
                    self.settling
                        .spawn(Arc::clone(inner).settle(lease, integration, at));
                }
                None => {
                    let seat = inner.integrations.seat(id);
                    self.in_flight.spawn(Arc::clone(inner).reconcile(
                        lease,
                        integration,
                        Some(seat),
                    ));
                }
            }
        }
        settling
    }

    /// Step two: sleep until the next link is due (at most the poll interval), a change
    /// wakes the engine, or a reconcile ends.
    pub async fn sleep_until_due(&mut self, tick: Tick) {
        let inner = &self.inner;
        let wake_at = if tick.more_waiting {
            None // lease again as soon as a slot frees
        } else {
            let next = inner.next_due().await;
            let floor = if tick.leased == 0 {
                Duration::from_millis(5)
            } else {
                Duration::ZERO
            };
            Some(next.clamp(floor, inner.config.poll_interval))
        };
        tokio::select! {
            _ = inner.waker.woken() => {}
            Some(_) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {}
            Some(_) = self.settling.join_next(), if !self.settling.is_empty() => {}
            _ = tokio::time::sleep(wake_at.unwrap_or_default()), if wake_at.is_some() => {}
        }
    }

    /// Forgets the reconciles that ended. A `JoinSet` counts an ended task until it is
    /// joined, and a wake-up joins at most one; without this, every wake by a change or
    /// a timer would leave one ended reconcile counted against `max_in_flight`, until the
    /// node leased one link at a time.
    fn reap(&mut self) {
        while self.in_flight.try_join_next().is_some() {}
        while self.settling.try_join_next().is_some() {}
    }

    /// Waits until every reconcile started so far has finished and been recorded.
    pub async fn idle(&mut self) {
        while self.settling.join_next().await.is_some() {}
        while self.in_flight.join_next().await.is_some() {}
    }

    pub fn in_flight(&mut self) -> usize {
        self.reap();
        self.in_flight.len() + self.settling.len()
    }

    /// Lets in-flight reconciles finish within `grace`, then abandons the rest (their
    /// leases expire and the work is redone).
    pub async fn stop(mut self, grace: Duration) {
        tracing::info!(in_flight = self.in_flight(), "sync engine stopping");
        if tokio::time::timeout(grace, self.idle()).await.is_err() {
            tracing::warn!(
                abandoned = self.in_flight(),
                "reconciles abandoned at shutdown; their leases expire and the work is redone"
            );
            self.in_flight.abort_all();
            self.settling.abort_all();
        }
        // Every finished reconcile waited for its completion to be written.
        if let Some(writer) = self.writer.take() {
            writer.abort();
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
}
