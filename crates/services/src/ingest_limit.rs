//! How many alerts one source may send: a bucket per source, refilled at the configured
//! rate, deep enough for ten seconds of it so an Alertmanager group flush or a short
//! storm passes whole. A body the bucket cannot pay for is refused before anything of it
//! is written — never half a body — with how long to wait; Alertmanager and Grafana
//! retry a 429 after `Retry-After`, so a flood slows down instead of being lost.
//!
//! Per node: with several nodes behind a load balancer a source may send up to the
//! limit to each.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::error::{ServiceError, ServiceResult};

/// Seconds of the rate a bucket holds when full.
const BURST_SECONDS: u32 = 10;

pub struct IngestLimits {
    limiter: Option<DefaultKeyedRateLimiter<Uuid>>,
    burst: NonZeroU32,
    clock: DefaultClock,
}

impl IngestLimits {
    /// `alerts_per_second` per source; `None` admits everything.
    pub fn new(alerts_per_second: Option<NonZeroU32>) -> Self {
        let burst = alerts_per_second
            .map(|rate| rate.saturating_mul(NonZeroU32::new(BURST_SECONDS).expect("not zero")))
            .unwrap_or(NonZeroU32::MIN);
        IngestLimits {
            limiter: alerts_per_second
                .map(|rate| RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))),
            burst,
            clock: DefaultClock::default(),
        }
    }

    /// Takes `alerts` from the source's bucket, or says how long until it holds them.
    /// A body larger than a full bucket costs a full bucket: it passes once the bucket
    /// is full again rather than never.
    pub fn admit(&self, source_id: Uuid, alerts: usize) -> ServiceResult<()> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let wanted = u32::try_from(alerts)
            .ok()
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN)
            .min(self.burst);
        match limiter.check_key_n(&source_id, wanted) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(refused(not_until.wait_time_from(self.clock.now()))),
            // `wanted` is at most the burst, so this cannot happen; refusing briefly is
            // the safe answer if it ever does.
            Err(_) => Err(refused(Duration::from_secs(1))),
        }
    }
}

fn refused(wait: Duration) -> ServiceError {
    ServiceError::RateLimited {
        retry_after: wait.max(Duration::from_secs(1)),
        message: "this source sent more alerts than its limit allows (SNOWBOUND_INGEST_RATE_LIMIT \
                  per second per source); retry after the time in Retry-After"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rate: u32) -> IngestLimits {
        IngestLimits::new(NonZeroU32::new(rate))
    }

    #[test]
    fn a_full_bucket_holds_ten_seconds_of_alerts_and_then_refuses_with_a_wait() {
        let limits = limits(5);
        let source = Uuid::new_v4();
        limits.admit(source, 50).unwrap();
        let Err(ServiceError::RateLimited { retry_after, .. }) = limits.admit(source, 1) else {
            panic!("the 51st alert within a second must wait");
        };
        assert!(retry_after >= Duration::from_secs(1));
        // Another source has a bucket of its own.
        limits.admit(Uuid::new_v4(), 50).unwrap();
    }

    #[test]
    fn a_body_larger_than_the_bucket_passes_when_the_bucket_is_full() {
        let limits = limits(5);
        let source = Uuid::new_v4();
        limits.admit(source, 500).unwrap();
        assert!(limits.admit(source, 1).is_err());
    }

    #[test]
    fn without_a_limit_everything_passes() {
        let limits = IngestLimits::new(None);
        for _ in 0..1000 {
            limits.admit(Uuid::nil(), 1000).unwrap();
        }
    }
}
