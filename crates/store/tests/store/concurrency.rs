//! What several workers (or several nodes) doing the same thing at once must not break —
//! on SQLite and on PostgreSQL — plus the PostgreSQL-only start-up and wake-up rules.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use snowbound_core::source::SourceKind;
use snowbound_core::{new_id, Severity};
use snowbound_store::testing::TestSchema;
use snowbound_store::{
    ApiCallFilter, ApiCallRecord, Heard, Migrations, NewLink, PostgresStore, SecretBox, Session,
    Store, StoreError, User, API_CALLS_KEPT,
};

use crate::common::incident;
use crate::common::{stored_source, team_and_integration, TestDb};

on_both_backends!(
    workers_leasing_at_once_never_share_a_link,
    one_key_racing_opens_one_incident,
    racing_setups_make_one_first_user,
    the_api_call_log_keeps_the_newest_calls_while_workers_write,
    users_and_sessions_round_trip,
    deleting_a_user_or_resetting_a_password_ends_sessions,
);

async fn workers_leasing_at_once_never_share_a_link(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    const LINKS: usize = 60;
    for _ in 0..LINKS {
        let incident = incident(&team);
        let link = NewLink {
            incident_id: incident.id,
            integration_id: integration.id,
            snapshot: None,
        };
        store
            .create_incident(&incident, &[], &[link])
            .await
            .unwrap();
    }
    // Leases are never completed here, so each link may be handed out exactly once.
    let workers = (0..6).map(|w| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let until = Utc::now() + chrono::Duration::seconds(60);
                let leases = store
                    .lease_due_links(&format!("w{w}"), Utc::now(), until, 4, None)
                    .await
                    .unwrap();
                if leases.is_empty() {
                    return mine;
                }
                mine.extend(leases.into_iter().map(|l| l.link.incident_id));
            }
        })
    });
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(
        (all.len(), distinct.len()),
        (LINKS, LINKS),
        "{}: every link leased exactly once",
        db.name()
    );
}

async fn one_key_racing_opens_one_incident(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let source = stored_source(&*store, &team, SourceKind::Webhook).await;
    let racers = (0..8).map(|_| {
        let (store, incident) = (Arc::clone(&store), incident(&team));
        tokio::spawn(async move {
            store
                .create_incident_for_key(source.id, "disk", &incident, &[], &[])
                .await
        })
    });
    let mut opened = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(()) => opened += 1,
            Err(StoreError::Conflict { field: "dedup_key" }) => {}
            Err(e) => panic!("{}: {e}", db.name()),
        }
    }
    assert_eq!(opened, 1, "{}", db.name());
    assert!(store
        .open_incident_for_key(source.id, "disk")
        .await
        .unwrap()
        .is_some());
}

fn someone(email: &str) -> User {
    User {
        id: new_id(),
        email: email.into(),
        password_hash: "$argon2id$x".into(),
        is_admin: false,
        team_ids: vec![new_id()],
        created_at: Utc::now(),
    }
}

async fn racing_setups_make_one_first_user(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let racers = (0..8).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.create_first_user(&someone(&format!("u{i}@x"))).await })
    });
    let mut created = 0;
    for racer in racers {
        created += usize::from(racer.await.unwrap().unwrap());
    }
    assert_eq!(created, 1, "{}", db.name());
    assert_eq!(store.count_users().await.unwrap(), 1);
}

async fn users_and_sessions_round_trip(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let first = someone("Ada@example.com");
    assert!(store.create_first_user(&first).await.unwrap());
    assert!(matches!(
        store.create_user(&someone("ada@EXAMPLE.com")).await,
        Err(StoreError::Conflict { field: "email" })
    ));
    store
        .create_user(&someone("bob@example.com"))
        .await
        .unwrap();
    let found = store
        .user_by_email("ADA@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((found.id, &found.team_ids), (first.id, &first.team_ids));
    let emails: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.email)
        .collect();
    assert_eq!(
        emails,
        ["Ada@example.com", "bob@example.com"],
        "{}",
        db.name()
    );

    let now = Utc::now();
    let session = Session {
        id: "abc".into(),
        user_id: first.id,
        csrf_token: "csrf".into(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
    };
    store.create_session(&session).await.unwrap();
    let (s, u) = store.session("abc", now).await.unwrap().unwrap();
    assert_eq!((s.csrf_token.as_str(), u.id), ("csrf", first.id));
    let later = now + chrono::Duration::hours(2);
    assert!(store.session("abc", later).await.unwrap().is_none());
    store.delete_session("abc").await.unwrap();
    assert!(store.session("abc", now).await.unwrap().is_none());
}

fn session_of(user: &User, id: &str) -> Session {
    let now = Utc::now();
    Session {
        id: id.into(),
        user_id: user.id,
        csrf_token: "csrf".into(),
        created_at: now,
        expires_at: now + chrono::Duration::hours(1),
    }
}

async fn deleting_a_user_or_resetting_a_password_ends_sessions(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let ada = someone("ada@example.com");
    let bob = someone("bob@example.com");
    store.create_user(&ada).await.unwrap();
    store.create_user(&bob).await.unwrap();
    for (user, id) in [(&ada, "ada-laptop"), (&ada, "ada-phone"), (&bob, "bob-1")] {
        store.create_session(&session_of(user, id)).await.unwrap();
    }
    assert_eq!(
        store.get_user(bob.id).await.unwrap().email,
        "bob@example.com"
    );

    store
        .set_user_password(ada.id, "$argon2id$new", Some("ada-laptop"))
        .await
        .unwrap();
    let now = Utc::now();
    let (_, kept) = store.session("ada-laptop", now).await.unwrap().unwrap();
    assert_eq!(kept.password_hash, "$argon2id$new", "{}", db.name());
    assert!(store.session("ada-phone", now).await.unwrap().is_none());
    store
        .set_user_password(ada.id, "$argon2id$newer", None)
        .await
        .unwrap();
    assert!(store.session("ada-laptop", now).await.unwrap().is_none());

    store.delete_user(bob.id).await.unwrap();
    assert!(store.session("bob-1", now).await.unwrap().is_none());
    assert!(matches!(
        store.get_user(bob.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_user(bob.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.set_user_password(bob.id, "x", None).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.count_users().await.unwrap(), 1, "{}", db.name());
}

async fn the_api_call_log_keeps_the_newest_calls_while_workers_write(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (_, integration) = team_and_integration(&*store).await;
    let integration_id = integration.id;
    let call = move |n: usize| ApiCallRecord {
        integration_id,
        incident_id: None,
        at: Utc::now(),
        method: "PATCH".into(),
        url: format!("http://sn/{n}"),
        status: Some(200),
        duration_ms: 3,
        request_body: None,
        response_body: None,
        error: None,
    };
    let writers = (0..4).map(|w| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for batch in 0..30 {
                let calls: Vec<_> = (0..10).map(|i| call(w * 1000 + batch * 10 + i)).collect();
                store
                    .record_api_calls(integration.id, None, &calls)
                    .await
                    .unwrap();
            }
        })
    });
    for writer in writers {
        writer.await.unwrap();
    }
    let last = call(99_999);
    store
        .record_api_calls(integration.id, None, std::slice::from_ref(&last))
        .await
        .unwrap();
    let kept = store
        .list_api_calls(&ApiCallFilter {
            integration_id: Some(integration.id),
            limit: Some(5000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(kept.len() as i64, API_CALLS_KEPT, "{}", db.name());
    assert_eq!(kept[0].url, last.url, "newest first");
}

#[tokio::test]
async fn postgres_without_migrations_refuses_to_start_when_told_not_to_migrate() {
    let schema = TestSchema::create().await;
    let err = PostgresStore::open(
        schema.url(),
        SecretBox::random(),
        Migrations::RequireApplied,
    )
    .await
    .err()
    .expect("an empty schema is refused");
    assert!(
        matches!(&err, StoreError::Schema(m) if m.contains("snowbound migrate")),
        "{err}"
    );
    PostgresStore::open(schema.url(), SecretBox::random(), Migrations::Apply)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_change_on_one_node_wakes_the_others() {
    let schema = TestSchema::create().await;
    let key = SecretBox::random();
    let writer = PostgresStore::open(schema.url(), key.clone(), Migrations::Apply)
        .await
        .unwrap();
    let other = PostgresStore::open(schema.url(), key, Migrations::RequireApplied)
        .await
        .unwrap();
    let wakes = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&wakes);
    let announced = Arc::new(std::sync::Mutex::new(Vec::new()));
    let heard = Arc::clone(&announced);
    let listener = other.spawn_change_listener(move |news| match news {
        Heard::Listening | Heard::LinksDue => {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        Heard::Announced(message) => heard.lock().unwrap().push(message.to_owned()),
        Heard::Deaf => {}
    });
    // The listener says so when it connects (it may have missed something).
    wait_for(&wakes, 1).await;
    let (team, integration) = team_and_integration(&writer).await;
    let incident = incident(&team);
    writer
        .create_incident(
            &incident,
            &[],
            &[NewLink {
                incident_id: incident.id,
                integration_id: integration.id,
                snapshot: None,
            }],
        )
        .await
        .unwrap();
    wait_for(&wakes, 2).await;
    let mut changed = incident.clone();
    changed.severity = Severity::Minor;
    changed.updated_at = Utc::now() + chrono::Duration::milliseconds(5);
    writer
        .update_incident(&changed, incident.updated_at, &[], &[])
        .await
        .unwrap();
    wait_for(&wakes, 3).await;
    // An announcement reaches the other node as it was sent, and wakes no engine.
    writer.announce("source changed").await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while announced.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "nothing announced");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        *announced.lock().unwrap(),
        vec!["source changed".to_owned()]
    );
    assert_eq!(wakes.load(Ordering::SeqCst), 3);
    listener.abort();
}

async fn wait_for(wakes: &AtomicUsize, at_least: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while wakes.load(Ordering::SeqCst) < at_least {
        assert!(
            std::time::Instant::now() < deadline,
            "no wake-up #{at_least}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
