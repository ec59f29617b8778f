//! Inbound sync's durable state (issue #15): the coalescing poke queue, per-source polls
//! and per-link inbound state — on SQLite and on PostgreSQL.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::common::{incident, stored_source, team_and_integration, TestDb};
use chrono::{DateTime, Duration, Utc};
use snowbound_core::inbound::{LinkNote, NoteKind};
use snowbound_core::source::SourceKind;
use snowbound_core::{
    new_id, FieldMap, Incident, IncidentStatus, Integration, Team, TimelineEntry,
};
use snowbound_store::{
    AdoptRecord, InboundIncidentChange, InboundWrite, LeaseOutcome, LinkState, NewLink,
    PokeOutcome, PollResult, SecretBox, Store, StoreError,
};
use uuid::Uuid;

on_both_backends!(
    a_poke_storm_coalesces_into_one_read_per_record,
    a_poke_arriving_during_its_read_is_read_again,
    a_failed_read_keeps_the_poke_until_its_retry,
    two_workers_never_hold_one_poke_and_a_lost_lease_cannot_complete,
    one_poll_per_source_at_a_time_with_a_watermark_that_never_goes_back,
    a_link_is_found_by_its_record_and_keeps_its_inbound_state,
    an_inbound_write_is_one_transaction_with_the_incident_change,
    a_record_is_adopted_once_and_listed_for_polls_while_it_matters,
    a_record_deleted_in_servicenow_parks_the_link_and_keeps_the_incident,
    a_restart_ends_the_dead_processs_poke_and_poll_leases,
    a_read_taking_the_pokes_revision_before_its_call_covers_the_pokes_before_it,
    an_inbound_change_is_not_journaled_back_to_its_own_record,
    an_integrations_standing_notes_are_listed_for_its_settings_page,
);

struct Fixture {
    store: Arc<dyn Store>,
    integration: Integration,
    incident: Incident,
    team: Team,
    source: Uuid,
    _db: TestDb,
}

async fn fixture(db: TestDb) -> Fixture {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let source = stored_source(&*store, &team, SourceKind::Webhook).await;
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
    Fixture {
        store,
        integration,
        incident,
        team,
        source: source.id,
        _db: db,
    }
}

fn later(seconds: i64) -> DateTime<Utc> {
    Utc::now() + Duration::seconds(seconds)
}

async fn a_poke_storm_coalesces_into_one_read_per_record(db: TestDb) {
    let f = fixture(db).await;
    let now = Utc::now();
    for i in 0..1000 {
        f.store
            .enqueue_poke(f.source, &format!("rec{}", i % 10), "incident", now)
            .await
            .unwrap();
    }
    assert_eq!(f.store.count_pokes(f.source).await.unwrap(), 10);
    let leases = f
        .store
        .lease_due_pokes("a", later(0), later(30), 100)
        .await
        .unwrap();
    assert_eq!(leases.len(), 10, "one read per record");
    assert_eq!(leases.iter().map(|l| l.pokes).sum::<i64>(), 1000);
    assert!(leases.iter().all(|l| l.table == "incident"));
    for lease in &leases {
        assert!(f
            .store
            .complete_poke(lease, &PokeOutcome::Read, Utc::now())
            .await
            .unwrap());
    }
    assert_eq!(f.store.count_pokes(f.source).await.unwrap(), 0);
}

async fn a_poke_arriving_during_its_read_is_read_again(db: TestDb) {
    let f = fixture(db).await;
    f.store
        .enqueue_poke(f.source, "rec", "incident", Utc::now())
        .await
        .unwrap();
    let first = f
        .store
        .lease_due_pokes("a", later(0), later(30), 10)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    // The record changes again while the first read is in flight.
    f.store
        .enqueue_poke(f.source, "rec", "incident", Utc::now())
        .await
        .unwrap();
    assert!(f
        .store
        .lease_due_pokes("b", later(0), later(30), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(f
        .store
        .complete_poke(&first[0], &PokeOutcome::Read, Utc::now())
        .await
        .unwrap());
    assert_eq!(f.store.count_pokes(f.source).await.unwrap(), 1, "kept");
    let again = f
        .store
        .lease_due_pokes("b", later(0), later(30), 10)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].rev > first[0].rev);
    assert!(f
        .store
        .complete_poke(&again[0], &PokeOutcome::Read, Utc::now())
        .await
        .unwrap());
    assert_eq!(f.store.count_pokes(f.source).await.unwrap(), 0);
}

async fn a_failed_read_keeps_the_poke_until_its_retry(db: TestDb) {
    let f = fixture(db).await;
    f.store
        .enqueue_poke(f.source, "rec", "incident", Utc::now())
        .await
        .unwrap();
    let lease = f
        .store
        .lease_due_pokes("a", later(0), later(30), 10)
        .await
        .unwrap()
        .remove(0);
    let retry = PokeOutcome::Retry {
        at: later(60),
        error: "503 from ServiceNow".into(),
    };
    assert!(f
        .store
        .complete_poke(&lease, &retry, Utc::now())
        .await
        .unwrap());
    // A poke storm meanwhile neither adds rows nor hurries the retry.
    for _ in 0..5 {
        f.store
            .enqueue_poke(f.source, "rec", "incident", Utc::now())
            .await
            .unwrap();
    }
    assert!(f
        .store
        .lease_due_pokes("a", later(1), later(30), 10)
        .await
        .unwrap()
        .is_empty());
    let retried = f
        .store
        .lease_due_pokes("a", later(61), later(90), 10)
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].pokes, 6);
}

async fn two_workers_never_hold_one_poke_and_a_lost_lease_cannot_complete(db: TestDb) {
    let f = fixture(db).await;
    for i in 0..40 {
        f.store
            .enqueue_poke(f.source, &format!("rec{i}"), "incident", Utc::now())
            .await
            .unwrap();
    }
    let (a, b) = tokio::join!(
        f.store.lease_due_pokes("a", later(0), later(30), 25),
        f.store.lease_due_pokes("b", later(0), later(30), 25),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 40);
    let mut ids: Vec<&str> = a.iter().chain(&b).map(|l| l.sys_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 40, "no poke held twice");

    // a's lease runs out; c takes the poke over; a can no longer complete it.
    let taken = f
        .store
        .lease_due_pokes("c", later(31), later(60), 100)
        .await
        .unwrap();
    assert_eq!(taken.len(), 40);
    assert!(!f
        .store
        .complete_poke(&a[0], &PokeOutcome::Read, Utc::now())
        .await
        .unwrap());
    let mine = taken.iter().find(|l| l.sys_id == a[0].sys_id).unwrap();
    assert!(f
        .store
        .complete_poke(mine, &PokeOutcome::Read, Utc::now())
        .await
        .unwrap());
    assert_eq!(f.store.count_pokes(f.source).await.unwrap(), 39);
}

async fn one_poll_per_source_at_a_time_with_a_watermark_that_never_goes_back(db: TestDb) {
    let f = fixture(db).await;
    assert_eq!(f.store.poll_state(f.source).await.unwrap(), None);
    f.store
        .set_poll_schedule(f.source, Some(5_000))
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        f.store.lease_due_polls("a", Utc::now(), later(30), 10),
        f.store.lease_due_polls("b", Utc::now(), later(30), 10),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len() + b.len(), 1, "one node polls the source");
    let lease = a.into_iter().chain(b).next().unwrap();
    assert_eq!((lease.watermark, lease.interval_ms), (None, 5_000));

    let at = Utc::now();
    let watermark = at - Duration::seconds(10);
    let polled = PollResult {
        at,
        watermark: Some(watermark),
        records_seen: 3,
        error: None,
        more: false,
    };
    assert!(f.store.complete_poll(&lease, &polled).await.unwrap());
    assert!(
        !f.store.complete_poll(&lease, &polled).await.unwrap(),
        "the lease ended"
    );
    let state = f.store.poll_state(f.source).await.unwrap().unwrap();
    assert_eq!(
        state.watermark.map(|w| w.timestamp_millis()),
        Some(watermark.timestamp_millis())
    );
    assert_eq!(state.last_records, Some(3));
    assert_eq!(state.last_error, None);
    assert_eq!(
        state.last_success_at.map(|t| t.timestamp_millis()),
        Some(at.timestamp_millis())
    );
    assert_eq!(
        state.next_poll_at.timestamp_millis(),
        at.timestamp_millis() + 5_000
    );

    // Not due before the interval; then a failed poll keeps the watermark and the last
    // success, and an older watermark never moves it back.
    assert!(f
        .store
        .lease_due_polls("a", at + Duration::seconds(4), later(30), 10)
        .await
        .unwrap()
        .is_empty());
    let lease = f
        .store
        .lease_due_polls("a", at + Duration::seconds(6), later(30), 10)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        lease.watermark.map(|w| w.timestamp_millis()),
        Some(watermark.timestamp_millis())
    );
    let failed = PollResult {
        at: at + Duration::seconds(6),
        watermark: Some(watermark - Duration::seconds(100)),
        records_seen: 0,
        error: Some("401".into()),
        more: true,
    };
    assert!(f.store.complete_poll(&lease, &failed).await.unwrap());
    let state = f.store.poll_state(f.source).await.unwrap().unwrap();
    assert_eq!(
        state.watermark.map(|w| w.timestamp_millis()),
        Some(watermark.timestamp_millis())
    );
    assert_eq!(state.last_error.as_deref(), Some("401"));
    assert_eq!(
        state.last_success_at.map(|t| t.timestamp_millis()),
        Some(at.timestamp_millis())
    );
    // `more`: due again at once.
    assert_eq!(
        state.next_poll_at.timestamp_millis(),
        (at + Duration::seconds(6)).timestamp_millis()
    );

    // Push only: no more polls, the state stays for the page.
    f.store.set_poll_schedule(f.source, None).await.unwrap();
    assert!(f
        .store
        .lease_due_polls("a", later(3600), later(3630), 10)
        .await
        .unwrap()
        .is_empty());
    assert!(f
        .store
        .poll_state(f.source)
        .await
        .unwrap()
        .unwrap()
        .watermark
        .is_some());
}

async fn synced(f: &Fixture, sys_id: &str, sent: FieldMap) {
    let lease = f
        .store
        .lease_due_links("w", Utc::now(), later(30), 10, None)
        .await
        .unwrap()
        .remove(0);
    let outcome = LeaseOutcome::Synced {
        sys_id: sys_id.into(),
        number: "INC0010001".into(),
        sent,
        servicenow_state: Some("1".into()),
    };
    assert!(f.store.complete_lease(&lease, &outcome).await.unwrap());
}

fn note(value: &str) -> LinkNote {
    LinkNote {
        field: "state".into(),
        kind: NoteKind::Drift,
        servicenow_value: value.into(),
        snowbound_value: "1".into(),
        by: "agent".into(),
        at: Utc::now(),
        reason: "the resolve transition is off for this source".into(),
    }
}

fn map(pairs: &[(&str, &str)]) -> FieldMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn a_link_is_found_by_its_record_and_keeps_its_inbound_state(db: TestDb) {
    let f = fixture(db).await;
    assert_eq!(
        f.store.inbound_link(f.integration.id, "abc").await.unwrap(),
        None
    );
    synced(&f, "abc", map(&[("state", "1"), ("urgency", "1")])).await;
    let found = f
        .store
        .inbound_link(f.integration.id, "abc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.link.incident_id, f.incident.id);
    assert_eq!((found.applied_mod_count, found.notes.len()), (None, 0));

    let write = |mod_count, notes: BTreeMap<String, Option<LinkNote>>| InboundWrite {
        incident_id: f.incident.id,
        integration_id: f.integration.id,
        change: None,
        mod_count,
        pushed: FieldMap::new(),
        notes,
        reconcile: false,
        park: None,
    };
    f.store
        .apply_inbound(&write(
            3,
            BTreeMap::from([("state".into(), Some(note("7")))]),
        ))
        .await
        .unwrap();
    let found = f
        .store
        .inbound_link(f.integration.id, "abc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.applied_mod_count, Some(3));
    assert_eq!(found.notes["state"].servicenow_value, "7");
    assert_eq!(
        found.link.state,
        LinkState::Synced,
        "notes alone wake nothing"
    );

    // An older read arriving late never lowers the applied count; a None clears a note.
    f.store
        .apply_inbound(&write(2, BTreeMap::from([("state".into(), None)])))
        .await
        .unwrap();
    let found = f
        .store
        .inbound_link(f.integration.id, "abc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.applied_mod_count, Some(3));
    assert!(found.notes.is_empty());
    assert!(matches!(
        f.store
            .apply_inbound(&InboundWrite {
                integration_id: new_id(),
                ..write(4, BTreeMap::new())
            })
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn an_inbound_write_is_one_transaction_with_the_incident_change(db: TestDb) {
    let f = fixture(db).await;
    synced(&f, "abc", map(&[("state", "1"), ("urgency", "1")])).await;
    let before = f
        .store
        .get_link(f.incident.id, f.integration.id)
        .await
        .unwrap();

    let mut resolved = f.incident.clone();
    resolved.status = IncidentStatus::Resolved;
    resolved.resolve_comment = Some("replaced disk".into());
    resolved.updated_at = f.incident.updated_at + Duration::milliseconds(5);
    let entry = TimelineEntry {
        at: Utc::now(),
        actor: "agent in ServiceNow INC0010001".into(),
        kind: "resolved".into(),
        detail: "replaced disk".into(),
    };
    let change = |expected| InboundIncidentChange {
        incident: resolved.clone(),
        expected_updated_at: expected,
        timeline: vec![entry.clone()],
    };
    let write = |change, mod_count| InboundWrite {
        incident_id: f.incident.id,
        integration_id: f.integration.id,
        change: Some(change),
        mod_count,
        pushed: map(&[("state", "6"), ("close_notes", "replaced disk")]),
        notes: BTreeMap::new(),
        reconcile: false,
        park: None,
    };

    // Stale: nothing of it is written, the link included.
    let stale = f
        .store
        .apply_inbound(&write(
            change(f.incident.updated_at - Duration::seconds(1)),
            5,
        ))
        .await;
    assert!(matches!(stale, Err(StoreError::Stale)), "{stale:?}");
    let found = f
        .store
        .inbound_link(f.integration.id, "abc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.applied_mod_count, None);
    assert_eq!(found.link.pushed["state"], "1");

    f.store
        .apply_inbound(&write(change(f.incident.updated_at), 5))
        .await
        .unwrap();
    let incident = f.store.get_incident(f.incident.id).await.unwrap();
    assert_eq!(incident.status, IncidentStatus::Resolved);
    let last = f
        .store
        .timeline(f.incident.id)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (last.actor, last.detail),
        (entry.actor.clone(), entry.detail.clone())
    );
    let found = f
        .store
        .inbound_link(f.integration.id, "abc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.applied_mod_count, Some(5));
    assert_eq!(
        found.link.pushed,
        map(&[
            ("state", "6"),
            ("urgency", "1"),
            ("close_notes", "replaced disk")
        ])
    );
    // The incident changed, so the link is bumped like for any change (its reconcile
    // then finds nothing to send).
    assert!(found.link.rev > before.rev);
    assert_eq!(found.link.state, LinkState::Pending);

    // A re-assertion without an incident change makes the link due itself.
    let lease = f
        .store
        .lease_due_links("w", Utc::now(), later(30), 10, None)
        .await
        .unwrap()
        .remove(0);
    assert!(f
        .store
        .complete_lease(&lease, &LeaseOutcome::UpToDate)
        .await
        .unwrap());
    let synced_rev = f
        .store
        .get_link(f.incident.id, f.integration.id)
        .await
        .unwrap();
    assert_eq!(synced_rev.state, LinkState::Synced);
    f.store
        .apply_inbound(&InboundWrite {
            incident_id: f.incident.id,
            integration_id: f.integration.id,
            change: None,
            mod_count: 6,
            pushed: map(&[("state", "2")]),
            notes: BTreeMap::new(),
            reconcile: true,
            park: None,
        })
        .await
        .unwrap();
    let due = f
        .store
        .get_link(f.incident.id, f.integration.id)
        .await
        .unwrap();
    assert_eq!(due.state, LinkState::Pending);
    assert_eq!(due.rev, synced_rev.rev + 1);
    assert_eq!(due.pushed["state"], "2");
}

fn adoption(f: &Fixture, sys_id: &str) -> AdoptRecord {
    let mut incident = incident(&f.team);
    incident.title = format!("born {sys_id}");
    AdoptRecord {
        timeline: vec![TimelineEntry {
            at: incident.created_at,
            actor: "agent in ServiceNow INC0010001".into(),
            kind: "opened".into(),
            detail: "opened in ServiceNow".into(),
        }],
        incident,
        integration_id: f.integration.id,
        sys_id: sys_id.into(),
        number: "INC0010001".into(),
        pushed: map(&[("state", "1"), ("urgency", "3")]),
        mod_count: 2,
    }
}

async fn a_record_is_adopted_once_and_listed_for_polls_while_it_matters(db: TestDb) {
    let f = fixture(db).await;
    let first = adoption(&f, "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0");
    f.store.adopt_record(&first).await.unwrap();
    // A second read of the same new record (a poke and a poll) opens nothing.
    let again = adoption(&f, "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0");
    let err = f.store.adopt_record(&again).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { field: "sys_id" }),
        "{err}"
    );
    assert!(matches!(
        f.store.get_incident(again.incident.id).await,
        Err(StoreError::NotFound)
    ));

    let found = f
        .store
        .inbound_link(f.integration.id, "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0")
        .await
        .unwrap()
        .expect("the adopted record's link");
    assert_eq!(found.link.incident_id, first.incident.id);
    assert_eq!(found.link.number.as_deref(), Some("INC0010001"));
    assert_eq!(found.link.state, LinkState::Synced);
    assert_eq!(found.link.pushed, first.pushed);
    assert_eq!(found.applied_mod_count, Some(2));
    let timeline = f.store.timeline(first.incident.id).await.unwrap();
    assert_eq!(timeline.len(), 1);
    // Nothing to send: the adopted link is not due.
    assert!(f
        .store
        .lease_due_links("w", Utc::now(), later(30), 10, Some(f.integration.id))
        .await
        .unwrap()
        .iter()
        .all(|l| l.link.incident_id != first.incident.id));

    // Listed for polls while unresolved; the fixture's own (not adopted) link never is.
    let listed = f
        .store
        .adopted_sys_ids(f.integration.id, later(-60), 10)
        .await
        .unwrap();
    assert_eq!(listed, ["b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"]);
    // Resolved: listed only while it changed after `since`.
    let mut resolved = first.incident.clone();
    resolved.status = IncidentStatus::Resolved;
    resolved.updated_at = first.incident.updated_at + Duration::milliseconds(5);
    f.store
        .update_incident(&resolved, first.incident.updated_at, &[], &[])
        .await
        .unwrap();
    assert_eq!(
        f.store
            .adopted_sys_ids(f.integration.id, later(-60), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(f
        .store
        .adopted_sys_ids(f.integration.id, later(60), 10)
        .await
        .unwrap()
        .is_empty());
}

async fn a_record_deleted_in_servicenow_parks_the_link_and_keeps_the_incident(db: TestDb) {
    let f = fixture(db).await;
    f.store
        .apply_inbound(&InboundWrite {
            incident_id: f.incident.id,
            integration_id: f.integration.id,
            change: None,
            mod_count: 0,
            pushed: FieldMap::new(),
            notes: BTreeMap::new(),
            reconcile: false,
            park: Some("deleted in ServiceNow".into()),
        })
        .await
        .unwrap();
    let link = f
        .store
        .get_link(f.incident.id, f.integration.id)
        .await
        .unwrap();
    assert_eq!(link.state, LinkState::Parked);
    assert_eq!(link.last_error.as_deref(), Some("deleted in ServiceNow"));
    assert_eq!(
        f.store.get_incident(f.incident.id).await.unwrap().status,
        f.incident.status
    );
}

async fn a_restart_ends_the_dead_processs_poke_and_poll_leases(db: TestDb) {
    let f = fixture(db).await;
    f.store
        .enqueue_poke(
            f.source,
            "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0",
            "incident",
            Utc::now(),
        )
        .await
        .unwrap();
    f.store
        .set_poll_schedule(f.source, Some(5_000))
        .await
        .unwrap();
    let dead = "dead-process";
    assert_eq!(
        f.store
            .lease_due_pokes(dead, Utc::now(), later(600), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        f.store
            .lease_due_polls(dead, Utc::now(), later(600), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    f.store.release_all_leases().await.unwrap();
    let pokes = f
        .store
        .lease_due_pokes("alive", Utc::now(), later(30), 10)
        .await
        .unwrap();
    let polls = f
        .store
        .lease_due_polls("alive", Utc::now(), later(30), 10)
        .await
        .unwrap();
    assert_eq!((pokes.len(), polls.len()), (1, 1));
}

async fn a_read_taking_the_pokes_revision_before_its_call_covers_the_pokes_before_it(db: TestDb) {
    let f = fixture(db).await;
    let sys_id = "d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0";
    assert_eq!(f.store.poke_rev(f.source, sys_id).await.unwrap(), None);
    f.store
        .enqueue_poke(f.source, sys_id, "incident", Utc::now())
        .await
        .unwrap();
    let mut lease = f
        .store
        .lease_due_pokes("w", Utc::now(), later(30), 10)
        .await
        .unwrap()
        .remove(0);
    // Poked again after the lease, before the read goes out: the read covers it.
    for _ in 0..5 {
        f.store
            .enqueue_poke(f.source, sys_id, "incident", Utc::now())
            .await
            .unwrap();
    }
    lease.rev = f.store.poke_rev(f.source, sys_id).await.unwrap().unwrap();
    assert!(f
        .store
        .complete_poke(&lease, &PokeOutcome::Read, Utc::now())
        .await
        .unwrap());
    assert_eq!(f.store.count_pokes(f.source).await.unwrap(), 0);
}

async fn an_inbound_change_is_not_journaled_back_to_its_own_record(db: TestDb) {
    let f = fixture(db).await;
    let mut acknowledged = f.incident.clone();
    acknowledged.status = IncidentStatus::Acknowledged;
    acknowledged.updated_at = f.incident.updated_at + Duration::milliseconds(3);
    f.store
        .apply_inbound(&InboundWrite {
            incident_id: f.incident.id,
            integration_id: f.integration.id,
            change: Some(InboundIncidentChange {
                incident: acknowledged,
                expected_updated_at: f.incident.updated_at,
                timeline: vec![TimelineEntry {
                    at: Utc::now(),
                    actor: "agent in ServiceNow INC0010001".into(),
                    kind: "acknowledged".into(),
                    detail: "acknowledged".into(),
                }],
            }),
            mod_count: 3,
            pushed: FieldMap::new(),
            notes: BTreeMap::new(),
            reconcile: false,
            park: None,
        })
        .await
        .unwrap();
    let pending = f
        .store
        .journal_pending(f.incident.id, f.integration.id, 10)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
}

async fn an_integrations_standing_notes_are_listed_for_its_settings_page(db: TestDb) {
    let f = fixture(db).await;
    assert!(f
        .store
        .standing_notes(f.integration.id, 10)
        .await
        .unwrap()
        .is_empty());
    let mut notes = BTreeMap::new();
    notes.insert("state".to_owned(), Some(note("6")));
    f.store
        .apply_inbound(&InboundWrite {
            incident_id: f.incident.id,
            integration_id: f.integration.id,
            change: None,
            mod_count: 1,
            pushed: FieldMap::new(),
            notes,
            reconcile: false,
            park: None,
        })
        .await
        .unwrap();
    let standing = f.store.standing_notes(f.integration.id, 10).await.unwrap();
    assert_eq!(standing.len(), 1);
    assert_eq!(standing[0].incident_id, f.incident.id);
    assert_eq!(standing[0].team_id, f.team.id);
    assert_eq!(standing[0].note.servicenow_value, "6");
}
