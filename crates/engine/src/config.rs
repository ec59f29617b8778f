//! The engine's settings, their defaults (defined here once: the binary's flags, its
//! serve config and [`EngineConfig::default`] all read these constants) and the rule
//! that ties the lease to the call timeout.

use std::time::Duration;

use uuid::Uuid;

use crate::backoff::Backoff;

/// Every default of the engine, in the units of the binary's flags.
pub mod defaults {
    /// Short, because a node that dies keeps its links this long; the heartbeat renews
    /// the leases of a live node, so the length does not limit how slow a call may be
    /// beyond the lease rule ([`super::check_lease`]).
    pub const LEASE_MS: u64 = 15_000;
    /// One call to ServiceNow, connect to last byte. With the default lease this is the
    /// longest the lease rule allows.
    pub const SERVICENOW_TIMEOUT_MS: u64 = 10_000;
    pub const RETRY_BASE_MS: u64 = 1_000;
    pub const RETRY_MAX_MS: u64 = 600_000;
    pub const RATE_LIMIT_COOLDOWN_MS: u64 = 5_000;
    pub const RATE_LIMIT_COOLDOWN_MAX_MS: u64 = 300_000;
    /// The ceiling of adaptive concurrency: an integration starts at 8 calls in flight
    /// and grows while its instance keeps pace (see `adaptive.rs`).
    pub const SERVICENOW_CONCURRENCY: usize = 32;
    /// 0 = no limit of our own; only the instance's 429s slow us down.
    pub const SERVICENOW_RATE_LIMIT: u32 = 0;
    pub const SYNC_SETTLE_MS: u64 = 500;
    pub const POLL_INTERVAL_MS: u64 = 5_000;
    pub const SHUTDOWN_GRACE_MS: u64 = 10_000;
}

/// Clock skew between nodes that a lease tolerates: another node's clock may run this
/// much ahead of ours and still see our lease as held while our call is out.
pub const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(1);

/// The lease rule. Before every ServiceNow call the worker makes sure its lease is
/// held for at least `call_timeout + CLOCK_SKEW_MARGIN` more (renewing it in the store
/// if not), so no call can still be out when another node may take the link over. The
/// node's heartbeat renews every lease it holds each `lease / 4`; a lease then always
/// has at least `lease − lease / 4` left, and the check before a call needs no write of
/// its own when
///
/// ```text
/// lease × 3/4 ≥ call_timeout + CLOCK_SKEW_MARGIN
/// ```
///
/// A configuration that breaks it is refused at start-up. Concurrency enters through
/// leasing: a node leases per integration its free call slots plus a queue as deep as
/// its limit (and the few the settle window holds outside the slots). A queued lease is
/// renewed by the heartbeat like any other and fenced before its call, so none runs
/// down while its link waits for a slot.
pub fn check_lease(lease: Duration, call_timeout: Duration) -> Result<(), LeaseTooShort> {
    if lease.saturating_sub(heartbeat_interval(lease)) >= call_timeout + CLOCK_SKEW_MARGIN {
        Ok(())
    } else {
        Err(LeaseTooShort {
            lease,
            call_timeout,
            shortest: shortest_lease(call_timeout),
        })
    }
}

/// The shortest lease [`check_lease`] accepts for this timeout.
pub fn shortest_lease(call_timeout: Duration) -> Duration {
    let needed = (call_timeout + CLOCK_SKEW_MARGIN).as_millis() as u64;
    Duration::from_millis((needed * 4).div_ceil(3))
}

/// How often the heartbeat renews the leases a node holds.
pub fn heartbeat_interval(lease: Duration) -> Duration {
    lease / 4
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a lease of {} ms is too short for calls of up to {} ms: a lease must be at least {} ms \
     (3/4 of it must cover one call plus {} ms of clock skew between nodes)",
    lease.as_millis(),
    call_timeout.as_millis(),
    shortest.as_millis(),
    CLOCK_SKEW_MARGIN.as_millis()
)]
pub struct LeaseTooShort {
    pub lease: Duration,
    pub call_timeout: Duration,
    pub shortest: Duration,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Names this node's leases, so a log line or a stuck lease says whose it is.
    pub node_id: String,
    /// Base of the links back to incidents written into ServiceNow descriptions.
    pub public_url: String,
    pub backoff: Backoff,
    /// How long a lease lasts without renewal; a node that dies loses its links to the
    /// others after this. See [`check_lease`].
    pub lease_for: Duration,
    /// The client's timeout for one call (the fence before a call covers this much).
    pub call_timeout: Duration,
    /// Leases in flight on this node at most, across integrations.
    pub max_in_flight: usize,
    /// Calls in flight to one integration at most: instances limit concurrent API
    /// transactions per user, and ordering per incident comes from the lease anyway.
    /// The ceiling of adaptive concurrency; a node holds leases for at most twice an
    /// integration's current limit (its slots and a queue for them).
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

impl EngineConfig {
    /// Reconciles waiting for one integration must not hold back the others: room for
    /// several integrations' full gates.
    pub fn max_in_flight_for(per_integration_concurrency: usize) -> usize {
        (per_integration_concurrency * 8).max(64)
    }

    pub fn random_node_id() -> String {
        format!("node-{}", &Uuid::new_v4().simple().to_string()[..8])
    }
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

impl Default for EngineConfig {
    fn default() -> Self {
        use defaults::*;
        EngineConfig {
            node_id: Self::random_node_id(),
            public_url: "http://127.0.0.1:8080".into(),
            backoff: Backoff {
                base: ms(RETRY_BASE_MS),
                max: ms(RETRY_MAX_MS),
            },
            lease_for: ms(LEASE_MS),
            call_timeout: ms(SERVICENOW_TIMEOUT_MS),
            max_in_flight: Self::max_in_flight_for(SERVICENOW_CONCURRENCY),
            per_integration_concurrency: SERVICENOW_CONCURRENCY,
            per_integration_rate_limit: None,
            rate_limit_cooldown: ms(RATE_LIMIT_COOLDOWN_MS),
            rate_limit_cooldown_max: ms(RATE_LIMIT_COOLDOWN_MAX_MS),
            poll_interval: ms(POLL_INTERVAL_MS),
            settle: ms(SYNC_SETTLE_MS),
            shutdown_grace: ms(SHUTDOWN_GRACE_MS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_keep_the_lease_rule() {
        let config = EngineConfig::default();
        assert_eq!(check_lease(config.lease_for, config.call_timeout), Ok(()));
    }

    #[test]
    fn the_shortest_lease_is_exactly_where_the_rule_starts_to_hold() {
        for timeout_ms in [0, 800, 2_000, 3_000, 10_000, 30_000, 12_345] {
            let timeout = ms(timeout_ms);
            let shortest = shortest_lease(timeout);
            assert_eq!(check_lease(shortest, timeout), Ok(()), "{timeout_ms}");
            let err = check_lease(shortest - ms(1), timeout).unwrap_err();
            assert_eq!(err.shortest, shortest);
        }
        assert_eq!(shortest_lease(ms(3_000)), ms(5_334));
    }

    #[test]
    fn a_lease_shorter_than_one_call_is_refused_with_the_numbers() {
        let err = check_lease(ms(7_000), ms(30_000)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("7000 ms") && text.contains("30000 ms"),
            "{text}"
        );
        assert!(text.contains(&format!("{} ms", shortest_lease(ms(30_000)).as_millis())));
    }
}
