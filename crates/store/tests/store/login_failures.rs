//! Wrong passwords counted per key: locks that grow, hold on every node sharing the
//! database, never shorten under a racing failure, are forgotten when quiet and can be
//! cleared by an administrator.

use chrono::{Duration, Utc};
use snowbound_core::login_limits::{LimitedBy, LoginLimits};
use snowbound_store::SecretBox;

use crate::common::TestDb;

on_both_backends!(
    a_key_locks_at_its_threshold_and_each_failure_after_waits_longer,
    quiet_keys_are_forgotten_and_an_admin_clears_one_or_all
);

fn account(email: &str) -> (String, LimitedBy) {
    (format!("account:{email}"), LimitedBy::Account)
}

async fn a_key_locks_at_its_threshold_and_each_failure_after_waits_longer(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let limits = LoginLimits {
        account_failures: 3,
        ..LoginLimits::default()
    };
    let now = Utc::now();
    let ada = [account("ada@example.com")];
    let keys = ["account:ada@example.com".to_owned()];
    for _ in 0..2 {
        assert_eq!(
            store.count_login_failure(&ada, &limits, now).await.unwrap(),
            None
        );
    }
    assert_eq!(store.login_locked_until(&keys, now).await.unwrap(), None);

    let first = store.count_login_failure(&ada, &limits, now).await.unwrap();
    let first = first.expect("the third failure locks");
    assert_eq!((first - now).num_seconds(), 60);
    // Stored as milliseconds: the lock read back is the one set, to the millisecond.
    let read = store.login_locked_until(&keys, now).await.unwrap().unwrap();
    assert_eq!(read.timestamp_millis(), first.timestamp_millis());
    // Another key is not locked by it.
    let bob = ["account:bob@example.com".to_owned()];
    assert_eq!(store.login_locked_until(&bob, now).await.unwrap(), None);
    // Once the lock ran out the key is free, but the next failure waits twice as long.
    let later = first + Duration::seconds(1);
    assert_eq!(store.login_locked_until(&keys, later).await.unwrap(), None);
    let second = store
        .count_login_failure(&ada, &limits, later)
        .await
        .unwrap();
    assert_eq!((second.unwrap() - later).num_seconds(), 120);

    // A failure counted with an earlier clock (another node, racing) never shortens the
    // lock already set.
    let short = store
        .count_login_failure(&ada, &limits, now - Duration::seconds(300))
        .await
        .unwrap()
        .unwrap();
    let held = store
        .login_locked_until(&keys, later)
        .await
        .unwrap()
        .unwrap();
    assert!(held > short);
    assert_eq!(held.timestamp_millis(), second.unwrap().timestamp_millis());
}

async fn quiet_keys_are_forgotten_and_an_admin_clears_one_or_all(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let limits = LoginLimits {
        account_failures: 1,
        address_failures: 1,
        ..LoginLimits::default()
    };
    let now = Utc::now();
    let both = [
        account("ada@example.com"),
        ("address:192.0.2.7".to_owned(), LimitedBy::Address),
    ];
    store
        .count_login_failure(&both, &limits, now)
        .await
        .unwrap();
    let ada = ["account:ada@example.com".to_owned()];
    let address = ["address:192.0.2.7".to_owned()];
    assert!(store
        .login_locked_until(&address, now)
        .await
        .unwrap()
        .is_some());

    assert_eq!(
        store
            .clear_login_failures(Some("account:ada@example.com"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.login_locked_until(&ada, now).await.unwrap(), None);
    assert!(store
        .login_locked_until(&address, now)
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.clear_login_failures(None).await.unwrap(), 1);
    assert_eq!(store.login_locked_until(&address, now).await.unwrap(), None);

    // A day of quiet later, counting any failure forgets the old keys: their counts start
    // again from one (with a threshold of two, one failure does not lock).
    let limits = LoginLimits {
        account_failures: 2,
        ..limits
    };
    store
        .count_login_failure(&[account("ada@example.com")], &limits, now)
        .await
        .unwrap();
    let next_day = now + limits.forget_after + Duration::seconds(1);
    assert_eq!(
        store
            .count_login_failure(&[account("ada@example.com")], &limits, next_day)
            .await
            .unwrap(),
        None
    );
}
