//! Leases beyond take-and-complete: renewing them, ending them all at start-up, leasing
//! per integration, the order they come in, and batches of completions — on SQLite and
//! on PostgreSQL.

use std::sync::Arc;

use crate::common::incident;
use crate::common::{team_and_integration, TestDb};
use chrono::{DateTime, Duration, Utc};
use snowbound_core::{new_id, FieldMap, Incident, Integration, Team};
use snowbound_store::{
    ApiCallFilter, ApiCallRecord, Completion, Lease, LeaseOutcome, LinkState, NewLink, SecretBox,
    Store,
};
use uuid::Uuid;

on_both_backends!(
    a_renewed_lease_outlives_its_first_expiry_and_a_lost_one_is_not_renewed,
    releasing_all_leases_frees_them_and_marks_unrecorded_creates_unsure,
    leasing_for_one_integration_leaves_the_others_links,
    the_most_overdue_link_is_leased_first,
    a_batch_of_completions_is_one_transaction,
    a_batch_records_every_outcome_and_its_calls,
    a_batch_mixing_every_outcome_writes_each_link_as_its_outcome_says,
    a_failing_integrations_backlog_is_skipped_not_walked,
);

/// A new incident linked to `integration`; its id.
async fn linked_incident(store: &dyn Store, team: &Team, integration: &Integration) -> Incident {
    let incident = incident(team);
    let link = NewLink {
        incident_id: incident.id,
        integration_id: integration.id,
        snapshot: None,
    };
    store
        .create_incident(&incident, &[], &[link])
        .await
        .unwrap();
    incident
}

async fn second_integration(store: &dyn Store, team: &Team, like: &Integration) -> Integration {
    let other = Integration {
        id: new_id(),
        display_name: "SN 2".into(),
        root_team_id: team.id,
        ..like.clone()
    };
    store
        .create_integration(
            &other,
            &snowbound_core::Credentials::basic(secrecy::SecretString::from("pw")),
        )
        .await
        .unwrap();
    other
}

fn in_secs(s: i64) -> DateTime<Utc> {
    Utc::now() + Duration::seconds(s)
}

fn synced() -> LeaseOutcome {
    LeaseOutcome::Synced {
        sys_id: "sys".into(),
        number: "INC1".into(),
        sent: FieldMap::from([("state".into(), "1".into())]),
        servicenow_state: Some("1".into()),
    }
}

async fn lease_all(store: &dyn Store, owner: &str, until: DateTime<Utc>) -> Vec<Lease> {
    store
        .lease_due_links(owner, Utc::now(), until, 100, None)
        .await
        .unwrap()
}

async fn a_renewed_lease_outlives_its_first_expiry_and_a_lost_one_is_not_renewed(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    linked_incident(&*store, &team, &integration).await;
    let leases = lease_all(&*store, "a", in_secs(1)).await;
    assert_eq!(leases.len(), 1);

    let held = store
        .renew_leases(&leases, Utc::now(), in_secs(60))
        .await
        .unwrap();
    assert_eq!(held, [true], "{}", db.name());
    // Past the first expiry, nobody else may take it.
    assert!(lease_all(&*store, "b", in_secs(60))
        .await
        .iter()
        .all(|l| l.owner != "b"));
    let later = in_secs(2);
    assert!(store
        .lease_due_links("b", later, in_secs(60), 10, None)
        .await
        .unwrap()
        .is_empty());

    // Once it expired and another worker took it, it is no longer "a"'s to renew.
    let taken = store
        .lease_due_links("b", in_secs(120), in_secs(180), 10, None)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let held = store
        .renew_leases(&leases, Utc::now(), in_secs(300))
        .await
        .unwrap();
    assert_eq!(held, [false], "{}", db.name());
    assert!(store.complete_lease(&taken[0], &synced()).await.unwrap());
    assert!(store
        .renew_leases(&[], Utc::now(), in_secs(1))
        .await
        .unwrap()
        .is_empty());
}

async fn releasing_all_leases_frees_them_and_marks_unrecorded_creates_unsure(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let fresh = linked_incident(&*store, &team, &integration).await;
    let recorded = linked_incident(&*store, &team, &integration).await;
    // `recorded` gets its ServiceNow record, then a change that needs another sync.
    let first = lease_all(&*store, "a", in_secs(60)).await;
    let lease = first.iter().find(|l| l.incident.id == recorded.id).unwrap();
    assert!(store.complete_lease(lease, &synced()).await.unwrap());
    let mut changed = recorded.clone();
    changed.title = "changed".into();
    changed.updated_at = recorded.updated_at + Duration::milliseconds(5);
    store
        .update_incident(&changed, recorded.updated_at, &[], &[])
        .await
        .unwrap();
    let second = lease_all(&*store, "a", in_secs(60)).await;
    assert_eq!(second.len(), 1, "only the changed one was free");

    // Process restarts: every lease of the dead one ends.
    assert_eq!(
        store.release_all_leases().await.unwrap(),
        2,
        "{}",
        db.name()
    );
    let fresh_link = store.get_link(fresh.id, integration.id).await.unwrap();
    let recorded_link = store.get_link(recorded.id, integration.id).await.unwrap();
    assert!(
        fresh_link.create_unsure,
        "its create may have reached ServiceNow"
    );
    assert!(!recorded_link.create_unsure, "it has its record");
    let again = lease_all(&*store, "b", in_secs(60)).await;
    assert_eq!(again.len(), 2, "{}: both due at once", db.name());
    for lease in &again {
        assert!(store.complete_lease(lease, &synced()).await.unwrap());
    }
    assert!(
        !store.complete_lease(&first[0], &synced()).await.unwrap(),
        "the dead owner's lease stays lost"
    );
    assert_eq!(store.release_all_leases().await.unwrap(), 0);
}

async fn leasing_for_one_integration_leaves_the_others_links(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, one) = team_and_integration(&*store).await;
    let two = second_integration(&*store, &team, &one).await;
    for _ in 0..3 {
        linked_incident(&*store, &team, &one).await;
        linked_incident(&*store, &team, &two).await;
    }
    let only_two = store
        .lease_due_links("a", Utc::now(), in_secs(60), 10, Some(two.id))
        .await
        .unwrap();
    assert_eq!(only_two.len(), 3, "{}", db.name());
    assert!(only_two.iter().all(|l| l.link.integration_id == two.id));
    let rest = lease_all(&*store, "b", in_secs(60)).await;
    assert_eq!(rest.len(), 3);
    assert!(rest.iter().all(|l| l.link.integration_id == one.id));
}

async fn the_most_overdue_link_is_leased_first(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let mut incidents = Vec::new();
    for _ in 0..4 {
        incidents.push(linked_incident(&*store, &team, &integration).await);
    }
    // Due in the opposite order of creation.
    let now = Utc::now().timestamp_millis();
    for (n, incident) in incidents.iter().enumerate() {
        db.raw(&format!(
            "UPDATE links SET next_attempt_at = {} WHERE incident_id = '{}'",
            now - 10_000 + n as i64 * -1000,
            incident.id
        ))
        .await;
    }
    let leased: Vec<_> = lease_all(&*store, "a", in_secs(60))
        .await
        .into_iter()
        .map(|l| l.incident.id)
        .collect();
    let expected: Vec<_> = incidents.iter().rev().map(|i| i.id).collect();
    assert_eq!(leased, expected, "{}", db.name());
}

fn call(integration: &Integration, incident: &Incident, n: usize) -> ApiCallRecord {
    ApiCallRecord {
        integration_id: integration.id,
        incident_id: Some(incident.id),
        at: Utc::now(),
        method: "POST".into(),
        url: format!("http://sn/{n}"),
        status: Some(201),
        duration_ms: 1,
        request_body: None,
        response_body: None,
        error: None,
    }
}

async fn a_batch_of_completions_is_one_transaction(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let incident = linked_incident(&*store, &team, &integration).await;
    let leases = lease_all(&*store, "a", in_secs(60)).await;
    let good = Completion {
        lease: leases[0].clone(),
        outcome: synced(),
        calls: vec![call(&integration, &incident, 1)],
    };
    // A completion whose calls cannot be logged (its integration is gone).
    let mut orphan = leases[0].clone();
    orphan.link.integration_id = new_id();
    let bad = Completion {
        lease: orphan,
        outcome: LeaseOutcome::Release,
        calls: vec![call(&integration, &incident, 2)],
    };
    assert!(store.complete_leases(&[good.clone(), bad]).await.is_err());
    let link = store.get_link(incident.id, integration.id).await.unwrap();
    assert_eq!(
        link.state,
        LinkState::Pending,
        "{}: nothing of the failed batch was kept",
        db.name()
    );
    assert!(store
        .list_api_calls(&ApiCallFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.complete_leases(&[good]).await.unwrap(), [true]);
    let link = store.get_link(incident.id, integration.id).await.unwrap();
    assert_eq!(link.state, LinkState::Synced);
}

async fn a_batch_records_every_outcome_and_its_calls(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, one) = team_and_integration(&*store).await;
    let two = second_integration(&*store, &team, &one).await;
    let a = linked_incident(&*store, &team, &one).await;
    let b = linked_incident(&*store, &team, &two).await;
    let c = linked_incident(&*store, &team, &one).await;
    let leases = lease_all(&*store, "w", in_secs(60)).await;
    let lease_of = |i: &Incident| {
        leases
            .iter()
            .find(|l| l.incident.id == i.id)
            .unwrap()
            .clone()
    };
    let mut lost = lease_of(&c);
    lost.owner = "somebody else".into();
    let done = [
        Completion {
            lease: lease_of(&b),
            outcome: LeaseOutcome::Park {
                error: "rejected".into(),
            },
            calls: vec![call(&two, &b, 1)],
        },
        Completion {
            lease: lease_of(&a),
            outcome: synced(),
            calls: vec![call(&one, &a, 2), call(&one, &a, 3)],
        },
        Completion {
            lease: lost,
            outcome: synced(),
            calls: vec![],
        },
    ];
    let ours = store.complete_leases(&done).await.unwrap();
    assert_eq!(
        ours,
        [true, true, false],
        "{}: in the order given",
        db.name()
    );
    assert_eq!(
        store.get_link(a.id, one.id).await.unwrap().state,
        LinkState::Synced
    );
    assert_eq!(
        store.get_link(b.id, two.id).await.unwrap().state,
        LinkState::Parked
    );
    assert_eq!(
        store.get_link(c.id, one.id).await.unwrap().state,
        LinkState::Pending
    );
    let calls = store
        .list_api_calls(&ApiCallFilter::default())
        .await
        .unwrap();
    assert_eq!(calls.len(), 3);
    let health = |id| {
        let store = Arc::clone(&store);
        async move { store.get_integration(id).await.unwrap().health }
    };
    assert!(health(one.id).await.last_success_at.is_some());
    assert!(health(two.id).await.last_success_at.is_none());
}

/// One completion batch is one multi-row statement; each link must still end as its own
/// outcome says, including those whose incident changed while the call was out.
async fn a_batch_mixing_every_outcome_writes_each_link_as_its_outcome_says(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let mut incidents = Vec::new();
    for _ in 0..7 {
        incidents.push(linked_incident(&*store, &team, &integration).await);
    }
    let leases = lease_all(&*store, "w", in_secs(60)).await;
    assert_eq!(leases.len(), 7);
    let lease_of = |i: &Incident| {
        leases
            .iter()
            .find(|l| l.incident.id == i.id)
            .unwrap()
            .clone()
    };
    // Changed while their calls were out: a success or a rejection leaves them due.
    for changed in [&incidents[1], &incidents[5]] {
        let mut newer = changed.clone();
        newer.title = "changed meanwhile".into();
        newer.updated_at = changed.updated_at + Duration::milliseconds(5);
        store
            .update_incident(&newer, changed.updated_at, &[], &[])
            .await
            .unwrap();
    }
    let retry_at = in_secs(30);
    let outcomes = [
        synced(),
        synced(),
        LeaseOutcome::UpToDate,
        LeaseOutcome::Retry {
            at: retry_at,
            error: "timed out".into(),
            create_unsure: true,
            unsure_sent: [("urgency".to_owned(), "1".to_owned())]
                .into_iter()
                .collect(),
        },
        LeaseOutcome::Park {
            error: "rejected".into(),
        },
        LeaseOutcome::Park {
            error: "rejected before the change".into(),
        },
        LeaseOutcome::Release,
    ];
    let done: Vec<Completion> = incidents
        .iter()
        .zip(outcomes)
        .map(|(incident, outcome)| Completion {
            lease: lease_of(incident),
            outcome,
            calls: vec![],
        })
        .collect();
    let ours = store.complete_leases(&done).await.unwrap();
    assert_eq!(ours, [true; 7], "{}", db.name());
    let link = |n: usize| {
        let (store, id) = (Arc::clone(&store), incidents[n].id);
        async move { store.get_link(id, integration.id).await.unwrap() }
    };

    let synced_link = link(0).await;
    assert_eq!(synced_link.state, LinkState::Synced, "{}", db.name());
    assert_eq!(synced_link.sys_id.as_deref(), Some("sys"));
    assert_eq!(synced_link.number.as_deref(), Some("INC1"));
    assert_eq!(synced_link.servicenow_state.as_deref(), Some("1"));
    assert_eq!(
        synced_link.pushed.get("state").map(String::as_str),
        Some("1")
    );
    assert_eq!(synced_link.synced_rev, synced_link.rev);
    assert!(synced_link.last_synced_at.is_some());

    let overtaken = link(1).await;
    assert_eq!(overtaken.state, LinkState::Pending, "{}", db.name());
    assert_eq!(overtaken.sys_id.as_deref(), Some("sys"));
    assert!(overtaken.synced_rev < overtaken.rev);

    let up_to_date = link(2).await;
    assert_eq!(up_to_date.state, LinkState::Synced);
    assert_eq!(up_to_date.sys_id, None);
    assert_eq!((up_to_date.attempts, up_to_date.last_error), (0, None));

    let retrying = link(3).await;
    assert_eq!(retrying.state, LinkState::Retrying, "{}", db.name());
    assert_eq!(retrying.attempts, 1);
    assert_eq!(retrying.last_error.as_deref(), Some("timed out"));
    assert!(retrying.create_unsure);
    // What the ambiguous create sent is what the record found later is diffed against.
    assert_eq!(
        retrying.pushed.get("urgency").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        retrying.next_attempt_at.timestamp_millis(),
        retry_at.timestamp_millis()
    );

    let parked = link(4).await;
    assert_eq!(parked.state, LinkState::Parked, "{}", db.name());
    assert_eq!(parked.attempts, 1);
    assert_eq!(parked.last_error.as_deref(), Some("rejected"));
    assert!(!parked.create_unsure);

    let parked_but_changed = link(5).await;
    assert_eq!(
        parked_but_changed.state,
        LinkState::Pending,
        "{}",
        db.name()
    );

    let released = link(6).await;
    assert_eq!(released.state, LinkState::Pending);
    assert_eq!((released.attempts, released.last_error), (0, None));
    // Every lease ended: what is due now is leased again at once, by anyone.
    let again: Vec<Uuid> = lease_all(&*store, "next", in_secs(60))
        .await
        .iter()
        .map(|l| l.incident.id)
        .collect();
    for due in [1, 5, 6] {
        assert!(again.contains(&incidents[due].id), "{}: {due}", db.name());
    }
    assert!(!again.contains(&incidents[0].id));
}

/// An instance down with a storm queued behind it: the open integration's links are
/// still leased (and next due) as if the backlog were not there, and the statements
/// that find them are range scans of one integration's due links, never a walk over
/// every due link — which made each lease cost the whole backlog.
async fn a_failing_integrations_backlog_is_skipped_not_walked(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, down) = team_and_integration(&*store).await;
    let up = second_integration(&*store, &team, &down).await;
    for _ in 0..20 {
        linked_incident(&*store, &team, &down).await;
    }
    store
        .mark_integration_failing(down.id, "401")
        .await
        .unwrap();
    let open = linked_incident(&*store, &team, &up).await;

    let leased = lease_all(&*store, "w", in_secs(60)).await;
    let leased: Vec<(Uuid, Uuid)> = leased
        .iter()
        .map(|l| (l.link.incident_id, l.link.integration_id))
        .collect();
    assert_eq!(leased, vec![(open.id, up.id)], "{}", db.name());
    // Only leased links wait now (their lease, then nothing): none of the failing
    // integration's count.
    let due = store.next_due_at().await.unwrap();
    assert!(
        due.is_some_and(|at| at > Utc::now() + Duration::seconds(30)),
        "{}: {due:?}",
        db.name()
    );

    let lease = format!(
        "SELECT l.incident_id FROM links l JOIN integrations i ON i.id = l.integration_id \
         WHERE l.state IN ('pending', 'retrying') AND l.next_attempt_at <= 5 \
         AND l.lease_until <= 5 AND i.failing IS NULL AND i.paused_until <= 5 \
         AND l.integration_id = '{}' ORDER BY l.next_attempt_at LIMIT 10",
        up.id
    );
    let plan = db.raw_plan(&lease).await.join("\n");
    assert!(
        plan.contains("links_due_by_integration"),
        "{}: {plan}",
        db.name()
    );
}
