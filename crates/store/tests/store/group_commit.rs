//! `write_incidents`: many incident writes, one transaction, an answer for each.

use std::sync::Arc;

use crate::common::{incident, team_and_integration, TestDb};
use chrono::Duration;
use snowbound_core::source::{Source, SourceKind};
use snowbound_core::{new_id, IncidentStatus, Team};
use snowbound_store::{GroupCommit, IncidentWrite, NewLink, SecretBox, Store, StoreError};
use uuid::Uuid;

on_both_backends!(
    a_batch_commits_every_write_and_answers_each,
    a_refused_write_holds_back_nothing_else,
    one_key_twice_in_a_batch_opens_one_incident,
    batches_racing_on_the_same_keys_open_each_key_once,
    concurrent_writers_share_commits_and_a_bad_write_fails_alone,
    the_batchs_read_of_key_holders_is_an_index_lookup,
);

async fn source_of(store: &dyn Store, team: &Team) -> Source {
    crate::common::stored_source(store, team, SourceKind::Alertmanager).await
}

fn keyed(team: &Team, source: &Source, key: &str) -> IncidentWrite {
    IncidentWrite::Create {
        incident: incident(team),
        timeline: vec![],
        links: vec![],
        dedup_key: Some((source.id, key.to_string())),
        routing: Default::default(),
    }
}

async fn a_batch_commits_every_write_and_answers_each(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let source = source_of(&*store, &team).await;
    let existing = incident(&team);
    store.create_incident(&existing, &[], &[]).await.unwrap();

    let plain = incident(&team);
    let mut resolved = existing.clone();
    resolved.status = IncidentStatus::Resolved;
    resolved.updated_at = existing.updated_at + Duration::milliseconds(1);
    let writes = vec![
        keyed(&team, &source, "disk"),
        IncidentWrite::Update {
            incident: resolved.clone(),
            expected_updated_at: existing.updated_at,
            timeline: vec![],
            new_links: vec![],
            routing: Default::default(),
        },
        IncidentWrite::Create {
            incident: plain.clone(),
            timeline: vec![],
            links: vec![NewLink {
                incident_id: plain.id,
                integration_id: integration.id,
                snapshot: None,
            }],
            dedup_key: None,
            routing: Default::default(),
        },
    ];
    let answers = store.write_incidents(&writes).await.unwrap();
    assert_eq!(answers.len(), 3, "{}", db.name());
    assert!(
        answers.iter().all(Result::is_ok),
        "{}: {answers:?}",
        db.name()
    );

    let IncidentWrite::Create {
        incident: keyed_incident,
        ..
    } = &writes[0]
    else {
        unreachable!()
    };
    let held = store
        .open_incident_for_key(source.id, "disk")
        .await
        .unwrap();
    assert_eq!(held.map(|i| i.id), Some(keyed_incident.id), "{}", db.name());
    assert_eq!(
        store.get_incident(existing.id).await.unwrap().status,
        IncidentStatus::Resolved
    );
    assert_eq!(store.links_of_incident(plain.id).await.unwrap().len(), 1);
}

async fn a_refused_write_holds_back_nothing_else(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let source = source_of(&*store, &team).await;
    let existing = incident(&team);
    store.create_incident(&existing, &[], &[]).await.unwrap();
    let holder = incident(&team);
    store
        .create_incident_for_key(source.id, "held", &holder, &[], &[])
        .await
        .unwrap();

    let mut stale = existing.clone();
    stale.title = "written by someone who read an old copy".into();
    let mut missing = incident(&team);
    missing.updated_at += Duration::milliseconds(1);
    let fresh = keyed(&team, &source, "fresh");
    let writes = vec![
        IncidentWrite::Update {
            incident: stale,
            expected_updated_at: existing.updated_at - Duration::milliseconds(5),
            timeline: vec![],
            new_links: vec![],
            routing: Default::default(),
        },
        keyed(&team, &source, "held"),
        IncidentWrite::Update {
            incident: missing.clone(),
            expected_updated_at: missing.created_at,
            timeline: vec![],
            new_links: vec![],
            routing: Default::default(),
        },
        fresh,
    ];
    let answers = store.write_incidents(&writes).await.unwrap();
    assert!(
        matches!(answers[0], Err(StoreError::Stale)),
        "{}: {answers:?}",
        db.name()
    );
    assert!(
        matches!(&answers[1], Err(StoreError::KeyHeld(held)) if held.id == holder.id),
        "{}: {answers:?}",
        db.name()
    );
    assert!(
        matches!(answers[2], Err(StoreError::NotFound)),
        "{}: {answers:?}",
        db.name()
    );
    assert!(answers[3].is_ok(), "{}: {answers:?}", db.name());

    assert_eq!(
        store.get_incident(existing.id).await.unwrap().title,
        existing.title
    );
    assert!(store
        .open_incident_for_key(source.id, "fresh")
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store
            .open_incident_for_key(source.id, "held")
            .await
            .unwrap()
            .map(|i| i.id),
        Some(holder.id)
    );
}

async fn one_key_twice_in_a_batch_opens_one_incident(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let source = source_of(&*store, &team).await;
    let writes = vec![keyed(&team, &source, "disk"), keyed(&team, &source, "disk")];
    let answers = store.write_incidents(&writes).await.unwrap();
    let opened: Vec<Uuid> = writes
        .iter()
        .zip(&answers)
        .filter(|(_, answer)| answer.is_ok())
        .map(|(write, _)| match write {
            IncidentWrite::Create { incident, .. } => incident.id,
            IncidentWrite::Update { incident, .. } => incident.id,
        })
        .collect();
    // The one refused is told which incident holds the key: the one opened beside it.
    let refused: Vec<Uuid> = answers
        .iter()
        .filter_map(|a| match a {
            Err(StoreError::KeyHeld(held)) => Some(held.id),
            _ => None,
        })
        .collect();
    assert_eq!(opened.len(), 1, "{}: {answers:?}", db.name());
    assert_eq!(refused, opened, "{}: {answers:?}", db.name());
}

/// Two nodes (here: two tasks) commit batches over the same keys in opposite orders: the
/// store's lock order keeps them from deadlocking, and each key opens one incident.
async fn batches_racing_on_the_same_keys_open_each_key_once(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let source = source_of(&*store, &team).await;
    let keys: Vec<String> = (0..20).map(|n| format!("k{n:02}")).collect();
    let racers = (0..4).map(|racer| {
        let store = Arc::clone(&store);
        let mut writes: Vec<IncidentWrite> =
            keys.iter().map(|key| keyed(&team, &source, key)).collect();
        if racer % 2 == 1 {
            writes.reverse();
        }
        tokio::spawn(async move { store.write_incidents(&writes).await })
    });
    let mut opened = 0;
    for racer in racers {
        for answer in racer.await.unwrap().unwrap() {
            match answer {
                Ok(()) => opened += 1,
                Err(StoreError::KeyHeld(_)) => {}
                Err(e) => panic!("{}: {e}", db.name()),
            }
        }
    }
    assert_eq!(opened, keys.len(), "{}", db.name());
    for key in &keys {
        assert!(store
            .open_incident_for_key(source.id, key)
            .await
            .unwrap()
            .is_some());
    }
}

/// Many writers at once through the group committer; one of them links a nonexistent
/// integration, which the database refuses and which spoils its batch's transaction.
/// Everyone else's incident is still written, and the bad one alone gets the error.
async fn concurrent_writers_share_commits_and_a_bad_write_fails_alone(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let source = source_of(&*store, &team).await;
    let group = GroupCommit::start(store.clone(), 2);
    let bad = incident(&team);
    let bad_write = IncidentWrite::Create {
        incident: bad.clone(),
        timeline: vec![],
        links: vec![NewLink {
            incident_id: bad.id,
            integration_id: new_id(),
            snapshot: None,
        }],
        dedup_key: None,
        routing: Default::default(),
    };
    let mut writers: Vec<_> = (0..60)
        .map(|n| {
            let (group, write) = (group.clone(), keyed(&team, &source, &format!("a{n}")));
            tokio::spawn(async move { group.write(write).await })
        })
        .collect();
    writers.insert(30, {
        let group = group.clone();
        tokio::spawn(async move { group.write(bad_write).await })
    });
    let answers: Vec<_> = futures_answers(writers).await;
    assert!(
        answers[30].is_err(),
        "{}: the bad write was accepted",
        db.name()
    );
    let good = answers
        .iter()
        .enumerate()
        .filter(|(i, a)| *i != 30 && a.is_ok())
        .count();
    assert_eq!(good, 60, "{}: {answers:?}", db.name());
    for n in 0..60 {
        assert!(store
            .open_incident_for_key(source.id, &format!("a{n}"))
            .await
            .unwrap()
            .is_some());
    }
    assert!(matches!(
        store.get_incident(bad.id).await,
        Err(StoreError::NotFound)
    ));
}

async fn futures_answers(
    writers: Vec<tokio::task::JoinHandle<Result<(), StoreError>>>,
) -> Vec<Result<(), StoreError>> {
    let mut answers = Vec::new();
    for writer in writers {
        answers.push(writer.await.unwrap());
    }
    answers
}

/// The shape of the one read a batch makes of its keys' holders (`HELD_KEYS` in the
/// store): a lookup per key, never a scan of every key ever seen — which would make a
/// batch's cost grow with the table (a row-value `IN (VALUES …)` did, on SQLite).
async fn the_batchs_read_of_key_holders_is_an_index_lookup(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let source = source_of(&*store, &team).await;
    let writes: Vec<IncidentWrite> = (0..50)
        .map(|n| keyed(&team, &source, &format!("k{n}")))
        .collect();
    store.write_incidents(&writes).await.unwrap();
    let select = format!(
        "SELECT a.source_id AS held_source_id, a.dedup_key AS held_dedup_key, i.* \
         FROM source_alerts a JOIN incidents i ON i.id = a.incident_id \
         WHERE i.status <> 'resolved' AND a.source_id = '{}' AND a.dedup_key IN ('k1', 'k2')",
        source.id
    );
    let plan = db.raw_plan(&select).await.join("\n");
    let scans = plan.contains("SCAN a") || plan.contains("Seq Scan on source_alerts");
    assert!(!scans, "{}: {plan}", db.name());
    assert!(plan.contains("source_alerts"), "{}: {plan}", db.name());
}
