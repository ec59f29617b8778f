//! What this node knows of each integration between lease batches, in one place: its
//! call slots (the gate, sized by adaptive concurrency), its rate limiter, its 429
//! cool-down and whether it is blocked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use uuid::Uuid;

use crate::adaptive::Aimd;
use crate::backoff::Backoff;
use crate::observe::Observer;
use crate::rate_limit::RateLimiter;

/// Calls in flight an integration starts with before adaptive concurrency has measured
/// its instance (the fixed limit of earlier versions).
pub const INITIAL_CONCURRENCY: usize = 8;

/// An hourly rate-limit window can answer with a long `Retry-After`; honour it, but not
/// beyond an hour, so a bogus header cannot stop syncing for days.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

struct Integration {
    /// One permit per call slot. A lease holds one from leasing (or the end of its
    /// settle wait) until its calls are done, so free permits = links we may lease.
    gate: Arc<Semaphore>,
    /// Permits to retire as they come back, after adaptive concurrency lowered the limit
    /// while they were out.
    debt: Arc<AtomicUsize>,
    /// Leased links waiting for a slot (see [`Integrations::lease_room`]).
    queued: Arc<AtomicUsize>,
    aimd: Aimd,
    limiter: Option<Arc<RateLimiter>>,
    /// Consecutive 429s without `Retry-After`.
    cooldowns: u32,
    block: Option<Block>,
}

impl Integration {
    fn free(&self) -> usize {
        self.gate
            .available_permits()
            .saturating_sub(self.debt.load(Ordering::Acquire))
    }

    fn slot(&mut self, permit: OwnedSemaphorePermit) -> Slot {
        if self.gate.available_permits() == 0 {
            self.aimd.saturated();
        }
        Slot {
            permit: Some(permit),
            debt: Arc::clone(&self.debt),
        }
    }

    /// Takes `n` permits out of circulation: free ones now, the rest as they return.
    fn retire(&mut self, n: usize) {
        let mut left = n;
        while left > 0 {
            match Arc::clone(&self.gate).try_acquire_owned() {
                Ok(permit) => {
                    permit.forget();
                    left -= 1;
                }
                Err(_) => break,
            }
        }
        self.debt.fetch_add(left, Ordering::AcqRel);
    }
}

/// One call slot of an integration, held while its calls are out. Given back on drop,
/// unless the limit was lowered meanwhile: then it retires.
pub struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    debt: Arc<AtomicUsize>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let retired = self
            .debt
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| d.checked_sub(1))
            .is_ok();
        if retired {
            permit.forget();
        }
    }
}

/// A leased link waiting for a call slot; counted in [`Integrations::lease_room`] until
/// it gets one.
pub struct Queued {
    integration_id: Uuid,
    count: Arc<AtomicUsize>,
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where a leased link starts: in a free slot, or queued for the next one.
pub enum Seat {
    Slot(Slot),
    Queued(Queued),
}

/// Pauses and failures this node caused, so reconciles of a lease batch (whose
/// integration was read before) stop at once instead of calling on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    PausedUntil(Instant),
    /// Failing with the settings of this time; newer settings lift it.
    Failing {
        settings_at: DateTime<Utc>,
    },
}

/// Calls to one integration's instance this node allows in flight now (adaptive
/// concurrency's limit) and the most it may grow to (`SNOWBOUND_SERVICENOW_CONCURRENCY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    pub current: usize,
    pub ceiling: usize,
}

pub(crate) struct Integrations {
    concurrency: usize,
    rate_limit: Option<u32>,
    cooldown: Backoff,
    known: Mutex<HashMap<Uuid, Integration>>,
    /// Told of each pause (the pause-seconds metric).
    observer: Observer,
}

impl Integrations {
    pub fn new(concurrency: usize, rate_limit: Option<u32>, cooldown: Backoff) -> Self {
        Integrations {
            concurrency: concurrency.max(1),
            rate_limit,
            cooldown,
            known: Mutex::new(HashMap::new()),
            observer: Observer::default(),
        }
    }

    pub(crate) fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
    }

    fn with<T>(&self, id: Uuid, f: impl FnOnce(&mut Integration) -> T) -> T {
        let mut known = self.known.lock().expect("integrations lock");
        let state = known.entry(id).or_insert_with(|| Integration {
            gate: Arc::new(Semaphore::new(INITIAL_CONCURRENCY.min(self.concurrency))),
            debt: Arc::default(),
            queued: Arc::default(),
            aimd: Aimd::new(INITIAL_CONCURRENCY, self.concurrency),
            limiter: self.rate_limit.map(|n| Arc::new(RateLimiter::new(n))),
            cooldowns: 0,
            block: None,
        });
        f(state)
    }

    /// Call slots free for `id`: how many of its links this node may lease now.
    #[cfg(test)]
    pub fn free_slots(&self, id: Uuid) -> usize {
        self.with(id, |i| i.free())
    }

    /// How many more links of `id` this node may lease now: its free slots plus a queue
    /// as deep as its limit. Leasing ahead keeps every slot busy while the next lease
    /// and the last completions commit; otherwise each slot would idle for two commits
    /// between calls. The queued leases are renewed like the others and fenced before
    /// their call, so waiting costs nothing but the lease's renewals.
    pub fn lease_room(&self, id: Uuid) -> usize {
        self.with(id, |i| {
            let queued = i.queued.load(Ordering::Acquire);
            i.free() + i.aimd.limit().saturating_sub(queued)
        })
    }

    /// True while no slot of any integration is taken: a lease across all integrations
    /// can then take up to [`Self::idle_lease_limit`] links without overfilling any one.
    pub fn all_idle(&self) -> bool {
        let known = self.known.lock().expect("integrations lock");
        known.values().all(|i| i.free() == i.aimd.limit())
    }

    /// The most links one lease across all integrations may take: the smallest limit
    /// any integration has (a new one starts at [`INITIAL_CONCURRENCY`]).
    pub fn idle_lease_limit(&self) -> usize {
        let known = self.known.lock().expect("integrations lock");
        known
            .values()
            .map(|i| i.aimd.limit())
            .chain([INITIAL_CONCURRENCY.min(self.concurrency)])
            .min()
            .unwrap_or(1)
    }

    /// `id`'s adaptive limit and ceiling on this node; an integration this node has not
    /// called yet shows the limit it would start with.
    pub fn concurrency(&self, id: Uuid) -> Concurrency {
        let known = self.known.lock().expect("integrations lock");
        Concurrency {
            current: known
                .get(&id)
                .map_or(INITIAL_CONCURRENCY.min(self.concurrency), |i| {
                    i.aimd.limit()
                }),
            ceiling: self.concurrency,
        }
    }

    /// Calls in flight `id` may have now (its adaptive limit).
    pub fn limit(&self, id: Uuid) -> usize {
        self.with(id, |i| i.aimd.limit())
    }

    /// A slot, if one is free now.
    #[cfg(test)]
    pub fn try_slot(&self, id: Uuid) -> Option<Slot> {
        self.with(id, |i| {
            let permit = Arc::clone(&i.gate).try_acquire_owned().ok()?;
            Some(i.slot(permit))
        })
    }

    /// A free slot now, else a place in the queue for the next.
    pub fn seat(&self, id: Uuid) -> Seat {
        self.with(id, |i| match Arc::clone(&i.gate).try_acquire_owned() {
            Ok(permit) => Seat::Slot(i.slot(permit)),
            Err(_) => {
                i.queued.fetch_add(1, Ordering::AcqRel);
                Seat::Queued(Queued {
                    integration_id: id,
                    count: Arc::clone(&i.queued),
                })
            }
        })
    }

    /// The slot of a seat: at once, or when the queue's turn comes.
    pub async fn take_seat(&self, seat: Seat) -> Slot {
        match seat {
            Seat::Slot(slot) => slot,
            Seat::Queued(queued) => {
                let slot = self.slot(queued.integration_id).await;
                drop(queued);
                slot
            }
        }
    }

    /// Waits for a slot (a link back from its settle wait joins the queue).
    pub async fn slot(&self, id: Uuid) -> Slot {
        let gate = self.with(id, |i| Arc::clone(&i.gate));
        let permit = gate.acquire_owned().await.expect("gates are never closed");
        self.with(id, |i| i.slot(permit))
    }

    /// A reconcile's calls took `rtt` (per call); `pressure` when the instance pushed
    /// back (429, 5xx, timeout). Adapts the integration's limit.
    pub fn observe(&self, id: Uuid, rtt: Duration, pressure: bool) {
        self.with(id, |i| {
            let before = i.aimd.limit();
            let Some(after) = i.aimd.observe(Instant::now(), rtt, pressure) else {
                return;
            };
            if after > before {
                i.gate.add_permits(after - before);
            } else {
                i.retire(before - after);
            }
            tracing::debug!(integration_id = %id, concurrency = after, "adaptive concurrency");
        })
    }

    pub fn limiter(&self, id: Uuid) -> Option<Arc<RateLimiter>> {
        self.with(id, |i| i.limiter.clone())
    }

    /// Whether this node paused or failed the integration since `settings_at` (the
    /// settings the caller read); an ended pause or newer settings lift the block.
    pub fn is_blocked(&self, id: Uuid, settings_at: DateTime<Utc>) -> bool {
        self.with(id, |i| {
            let still = match i.block {
                None => false,
                Some(Block::PausedUntil(until)) => until > Instant::now(),
                Some(Block::Failing {
                    settings_at: failed,
                }) => settings_at <= failed,
            };
            if !still {
                i.block = None;
            }
            still
        })
    }

    /// A 429: nobody calls before the pause ends. Returns the pause: `Retry-After`
    /// (capped), else a cool-down that doubles while 429s without it continue.
    pub fn rate_limited(&self, id: Uuid, retry_after: Option<Duration>) -> Duration {
        let wait = self.with(id, |i| {
            let wait = match retry_after {
                Some(wait) => wait.min(MAX_RETRY_AFTER),
                None => {
                    let wait = self.cooldown.ceiling(i.cooldowns);
                    i.cooldowns = i.cooldowns.saturating_add(1);
                    wait
                }
            };
            i.block = Some(Block::PausedUntil(Instant::now() + wait));
            wait
        });
        self.observer.paused(id, wait);
        wait
    }

    /// A 401 with the settings of `settings_at`.
    pub fn failing(&self, id: Uuid, settings_at: DateTime<Utc>) {
        self.with(id, |i| i.block = Some(Block::Failing { settings_at }));
    }

    /// An answer that was not a 429: the cool-down starts over.
    pub fn answered(&self, id: Uuid) {
        self.with(id, |i| i.cooldowns = 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn integrations(concurrency: usize) -> Integrations {
        Integrations::new(
            concurrency,
            None,
            Backoff {
                base: Duration::from_secs(5),
                max: Duration::from_secs(300),
            },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_gate_hands_out_its_slots_and_the_next_waits_for_one_to_free() {
        let gates = Arc::new(integrations(2));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert!(gates.all_idle());
        let first = gates.try_slot(a).unwrap();
        let _second = gates.try_slot(a).unwrap();
        assert!(gates.try_slot(a).is_none());
        assert_eq!(gates.free_slots(a), 0);
        // Another integration's slots are its own.
        assert_eq!(gates.free_slots(b), 2);
        assert!(!gates.all_idle());

        let waiting = tokio::spawn({
            let gates = Arc::clone(&gates);
            async move {
                let start = Instant::now();
                let _slot = gates.slot(a).await;
                Instant::now() - start
            }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!waiting.is_finished());
        drop(first);
        assert_eq!(waiting.await.unwrap(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_blocks_until_it_ends_and_is_capped_at_an_hour() {
        let gates = integrations(8);
        let id = Uuid::new_v4();
        let settings = Utc::now();
        assert!(!gates.is_blocked(id, settings));
        let wait = gates.rate_limited(id, Some(Duration::from_secs(30)));
        assert_eq!(wait, Duration::from_secs(30));
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(gates.is_blocked(id, settings));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!gates.is_blocked(id, settings));

        let wait = gates.rate_limited(id, Some(Duration::from_secs(86_400)));
        assert_eq!(wait, MAX_RETRY_AFTER);
    }

    #[tokio::test(start_paused = true)]
    async fn without_retry_after_the_cool_down_doubles_until_an_answer_resets_it() {
        let gates = integrations(8);
        let id = Uuid::new_v4();
        let waits: Vec<u64> = (0..3)
            .map(|_| gates.rate_limited(id, None).as_secs())
            .collect();
        assert_eq!(waits, [5, 10, 20]);
        tokio::time::advance(Duration::from_secs(19)).await;
        assert!(gates.is_blocked(id, Utc::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!gates.is_blocked(id, Utc::now()));
        gates.answered(id);
        assert_eq!(gates.rate_limited(id, None), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn failing_blocks_until_newer_settings_and_time_does_not_lift_it() {
        let gates = integrations(8);
        let id = Uuid::new_v4();
        let old = Utc::now();
        gates.failing(id, old);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(gates.is_blocked(id, old));
        assert!(!gates.is_blocked(id, old + chrono::Duration::milliseconds(1)));
        // Lifted for good, not only for the caller with the new settings.
        assert!(!gates.is_blocked(id, old));
    }
}
