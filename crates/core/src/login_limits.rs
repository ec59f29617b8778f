//! How many wrong passwords an account, or a client address, may send before logins from
//! it wait, and for how long. Pure: the account service counts failures in the store and
//! asks here what the count means.
//!
//! The wait grows with every failure past the threshold, so guessing stays slow however
//! long it goes on, while a person who mistyped a few times never meets it. It never
//! locks anyone out for good: the longest wait is [`LoginLimits::max_lock`], and an
//! administrator (the admin token) or a restart with `--reset-login-limits` ends it.

use chrono::Duration;

/// What the failures counted under one key are: the account's email or the address a
/// login came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitedBy {
    Account,
    Address,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    /// Wrong passwords for one account before its logins wait.
    pub account_failures: i64,
    /// Wrong passwords from one address (any account) before its logins wait. Higher:
    /// behind a proxy or NAT many people share an address.
    pub address_failures: i64,
    /// The first wait; each further failure doubles it.
    pub first_lock: Duration,
    pub max_lock: Duration,
    /// Failures older than this, with none since, are forgotten.
    pub forget_after: Duration,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            account_failures: 10,
            address_failures: 50,
            first_lock: Duration::seconds(60),
            max_lock: Duration::hours(1),
            forget_after: Duration::hours(24),
        }
    }
}

impl LoginLimits {
    /// How long logins under a key wait after its `failures`-th failure in a row;
    /// `None` below the threshold.
    pub fn lock_after(&self, by: LimitedBy, failures: i64) -> Option<Duration> {
        let threshold = match by {
            LimitedBy::Account => self.account_failures,
            LimitedBy::Address => self.address_failures,
        };
        if failures < threshold {
            return None;
        }
        // Doubling past 2^20 is far beyond any sane max_lock; the cap keeps the shift sound.
        let doublings = u32::try_from(failures - threshold)
            .unwrap_or(u32::MAX)
            .min(20);
        let lock = self.first_lock * (1_i32 << doublings);
        Some(lock.min(self.max_lock))
    }
}

/// The words a person reads on the login page or in the API's error: how long to wait,
/// rounded up to what a clock shows.
pub fn wait_message(wait: Duration) -> String {
    // Rounded up: "59 seconds" for a wait of 59.9 would be a promise we break.
    let seconds = ((wait.num_milliseconds() + 999) / 1000).max(1);
    let when = if seconds == 1 {
        "1 second".to_owned()
    } else if seconds < 90 {
        format!("{seconds} seconds")
    } else {
        format!("{} minutes", (seconds + 59) / 60)
    };
    format!("Too many wrong passwords. Logins wait for {when}; try again then.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_waits_from_its_tenth_failure_and_the_wait_doubles_up_to_an_hour() {
        let limits = LoginLimits::default();
        assert_eq!(limits.lock_after(LimitedBy::Account, 9), None);
        assert_eq!(
            limits.lock_after(LimitedBy::Account, 10),
            Some(Duration::seconds(60))
        );
        assert_eq!(
            limits.lock_after(LimitedBy::Account, 11),
            Some(Duration::seconds(120))
        );
        assert_eq!(
            limits.lock_after(LimitedBy::Account, 15),
            Some(Duration::seconds(1920))
        );
        assert_eq!(
            limits.lock_after(LimitedBy::Account, 16),
            Some(Duration::hours(1))
        );
        assert_eq!(
            limits.lock_after(LimitedBy::Account, i64::MAX),
            Some(Duration::hours(1))
        );
    }

    #[test]
    fn an_address_may_fail_more_often_than_an_account() {
        let limits = LoginLimits::default();
        assert_eq!(limits.lock_after(LimitedBy::Address, 49), None);
        assert_eq!(
            limits.lock_after(LimitedBy::Address, 50),
            Some(Duration::seconds(60))
        );
    }

    #[test]
    fn the_message_says_how_long_in_words_a_clock_shows() {
        assert!(wait_message(Duration::seconds(60)).contains("60 seconds"));
        assert!(wait_message(Duration::milliseconds(200)).contains("1 second;"));
        assert!(wait_message(Duration::seconds(121)).contains("3 minutes"));
        assert!(wait_message(Duration::milliseconds(59_100)).contains("60 seconds"));
    }
}
