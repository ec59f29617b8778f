//! A per-integration call limit: at most `limit` calls in any window of one second.
//!
//! A plain token bucket lets `2 × limit` calls through within one second (a full bucket
//! plus its refill), which is exactly what trips an instance's per-second rule. Keeping
//! the send times of the last `limit` calls and waiting until the oldest is a second
//! (plus a margin for network jitter) old allows bursts up to the limit but never more
//! in any window, sliding or calendar.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// Calls sent a little apart may arrive closer together; this keeps them in their window.
const JITTER_MARGIN: Duration = Duration::from_millis(25);
const WINDOW: Duration = Duration::from_secs(1);

pub(crate) struct RateLimiter {
    limit: usize,
    /// Send times of the last `limit` calls, oldest first. The async lock queues
    /// waiters in order, so a waiting call is not overtaken.
    sent: Mutex<VecDeque<Instant>>,
}

impl RateLimiter {
    pub fn new(per_second: u32) -> Self {
        let limit = per_second.max(1) as usize;
        RateLimiter {
            limit,
            sent: Mutex::new(VecDeque::with_capacity(limit)),
        }
    }

    /// Waits until one more call fits in the window, and counts it as sent now.
    pub async fn acquire(&self) {
        let mut sent = self.sent.lock().await;
        if sent.len() >= self.limit {
            let oldest = sent.pop_front().expect("non-empty");
            tokio::time::sleep_until(oldest + WINDOW + JITTER_MARGIN).await;
        }
        sent.push_back(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn never_more_than_the_limit_in_any_second() {
        let limiter = RateLimiter::new(5);
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..23 {
            limiter.acquire().await;
            times.push(Instant::now() - start);
        }
        // A burst of five at once, then five per (slightly more than a) second.
        assert!(times[..5].iter().all(|t| *t == Duration::ZERO));
        for (i, t) in times.iter().enumerate().skip(5) {
            assert!(*t - times[i - 5] >= WINDOW, "call {i} at {t:?}");
        }
    }
}
