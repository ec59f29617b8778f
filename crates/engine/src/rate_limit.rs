//! A per-integration call limit: at most `limit` calls in any window of one second, as
//! the instance counts them.
//!
//! A plain token bucket lets `2 × limit` calls through within one second (a full bucket
//! plus its refill), which is exactly what trips an instance's per-second rule. And the
//! instance counts a call when it handles it, somewhere between our send and its answer,
//! so spacing the sends is not enough either: calls delayed on the way can bunch up. So
//! each call holds one of `limit` places from before it is sent until a full second
//! after its answer. Any call the instance handles within one second then held its place
//! at the end of that second, and there are only `limit` places. Bursts up to the limit
//! go at once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const WINDOW: Duration = Duration::from_secs(1);

/// One call's place; dropping it when the answer is in frees the place a second later.
pub(crate) struct CallPermit(Option<OwnedSemaphorePermit>);

impl Drop for CallPermit {
    fn drop(&mut self) {
        let Some(place) = self.0.take() else { return };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                tokio::time::sleep(WINDOW).await;
                drop(place);
            });
        }
    }
}

pub(crate) struct RateLimiter {
    /// Tokio's semaphore is fair: a waiting call is not overtaken.
    places: Arc<Semaphore>,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        RateLimiter {
            places: Arc::new(Semaphore::new(per_second.max(1) as usize)),
        }
    }

    /// Waits until one more call fits; hold the permit until the call is answered.
    pub async fn acquire(&self) -> CallPermit {
        let place = Arc::clone(&self.places)
            .acquire_owned()
            .await
            .expect("never closed");
        CallPermit(Some(place))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_any_second() {
        let limiter = RateLimiter::new(5);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..23 {
            let permit = limiter.acquire().await;
            times.push(Instant::now() - start);
            drop(permit);
        }
        // A burst of five at once, then five per second.
        assert!(times[..5].iter().all(|t| *t == Duration::ZERO));
        for (i, t) in times.iter().enumerate().skip(5) {
            assert!(*t - times[i - 5] >= WINDOW, "call {i} at {t:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_holds_its_place_until_a_second_after_it() {
        let limiter = Arc::new(RateLimiter::new(1));
        let start = Instant::now();
        let slow = limiter.acquire().await;
        let next = tokio::spawn({
            let limiter = Arc::clone(&limiter);
            async move {
                let _ = limiter.acquire().await;
                Instant::now() - start
            }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        drop(slow);
        let waited = next.await.unwrap();
        assert_eq!(waited, Duration::from_secs(4));
    }
}
