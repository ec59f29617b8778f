//! The instance's `API_INT` semaphore pool (TABLE_API.md §5): a fixed number of inbound
//! API transactions run at once, a bounded queue waits for them, and a request arriving
//! with both full is refused at once with a 429 that carries no `Retry-After` (it never
//! ran, so no rate-limit rule matched). Queued requests take longer, which is the signal
//! an adaptive client backs off on before the queue fills.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Semaphores and queue depth (out of the box an instance queues up to 50).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiSemaphores {
    pub slots: usize,
    pub queue: usize,
}

pub(crate) struct Pool {
    limits: ApiSemaphores,
    running: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Held while a transaction runs; its semaphore frees on drop.
pub(crate) struct Running(#[allow(dead_code)] OwnedSemaphorePermit);

impl Pool {
    pub fn new(limits: ApiSemaphores) -> Self {
        Pool {
            limits,
            running: Arc::new(Semaphore::new(limits.slots.max(1))),
            waiting: AtomicUsize::new(0),
        }
    }

    /// A semaphore now, after a wait in the queue, or `None`: both full, refuse.
    pub async fn enter(&self) -> Option<Running> {
        if let Ok(permit) = Arc::clone(&self.running).try_acquire_owned() {
            return Some(Running(permit));
        }
        let queued = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < self.limits.queue).then_some(w + 1)
            })
            .is_ok();
        if !queued {
            return None;
        }
        let permit = Arc::clone(&self.running).acquire_owned().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.ok().map(Running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn slots_then_queue_then_refusal() {
        let pool = Arc::new(Pool::new(ApiSemaphores { slots: 1, queue: 1 }));
        let first = pool.enter().await.expect("a free semaphore");
        let queued = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.enter().await.is_some() }
        });
        // Wait until the second request sits in the queue.
        while pool.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(pool.enter().await.is_none(), "queue full: refused at once");
        drop(first);
        assert!(
            queued.await.unwrap(),
            "the queued one runs once a semaphore frees"
        );
    }
}
