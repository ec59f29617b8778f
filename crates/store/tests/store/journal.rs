//! Comments and the per-link journal of notes written to ServiceNow (issue #17), on
//! SQLite and on PostgreSQL.

use std::sync::Arc;

use crate::common::{incident, team_and_integration, TestDb};
use chrono::{Duration, Utc};
use snowbound_core::{Incident, Integration, TimelineEntry};
use snowbound_store::{JournalState, LinkState, NewLink, SecretBox, Store, StoreError};

on_both_backends!(
    a_comment_is_a_timeline_entry_that_wakes_the_links,
    a_comment_on_no_incident_is_not_found,
    journal_entries_go_from_pending_to_unsure_to_written,
    only_the_lease_holder_marks_the_journal,
);

struct Fixture {
    store: Arc<dyn Store>,
    integration: Integration,
    incident: Incident,
    _db: TestDb,
}

fn entry(kind: &str, detail: &str) -> TimelineEntry {
    TimelineEntry {
        at: Utc::now(),
        actor: "alice".into(),
        kind: kind.into(),
        detail: detail.into(),
    }
}

async fn fixture(db: TestDb) -> Fixture {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let incident = incident(&team);
    let link = NewLink {
        incident_id: incident.id,
        integration_id: integration.id,
        snapshot: None,
    };
    store
        .create_incident(
            &incident,
            &[
                entry("opened", "opened"),
                entry("forwarded", "forwarded to desk"),
            ],
            &[link],
        )
        .await
        .unwrap();
    Fixture {
        store,
        integration,
        incident,
        _db: db,
    }
}

async fn lease(f: &Fixture, owner: &str) -> snowbound_store::Lease {
    let now = Utc::now() + Duration::seconds(1);
    let mut leases = f
        .store
        .lease_due_links(owner, now, now + Duration::seconds(30), 10, None)
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    leases.remove(0)
}

async fn a_comment_is_a_timeline_entry_that_wakes_the_links(db: TestDb) {
    let f = fixture(db).await;
    let lease = lease(&f, "w").await;
    f.store
        .complete_lease(&lease, &snowbound_store::LeaseOutcome::UpToDate)
        .await
        .unwrap();
    let link = f
        .store
        .get_link(f.incident.id, f.integration.id)
        .await
        .unwrap();
    assert_eq!(link.state, LinkState::Synced);

    f.store
        .add_comment(f.incident.id, "bob", "restarted the pod", Utc::now())
        .await
        .unwrap();
    let timeline = f.store.timeline(f.incident.id).await.unwrap();
    let last = timeline.last().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.actor.as_str()),
        ("comment", "bob")
    );
    assert_eq!(last.detail, "restarted the pod");
    let link = f
        .store
        .get_link(f.incident.id, f.integration.id)
        .await
        .unwrap();
    assert_eq!(
        link.state,
        LinkState::Pending,
        "the comment must reach ServiceNow"
    );
    assert!(link.rev > link.synced_rev);
}

async fn a_comment_on_no_incident_is_not_found(db: TestDb) {
    let f = fixture(db).await;
    let err = f
        .store
        .add_comment(snowbound_core::new_id(), "bob", "x", Utc::now())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

async fn journal_entries_go_from_pending_to_unsure_to_written(db: TestDb) {
    let f = fixture(db).await;
    f.store
        .add_comment(f.incident.id, "bob", "first", Utc::now())
        .await
        .unwrap();
    let pending = f
        .store
        .journal_pending(f.incident.id, f.integration.id, 10)
        .await
        .unwrap();
    // `opened` is not a journaled kind; `forwarded` and the comment are, in order.
    let kinds: Vec<&str> = pending.iter().map(|i| i.entry.kind.as_str()).collect();
    assert_eq!(kinds, vec!["forwarded", "comment"]);
    assert!(pending.iter().all(|i| !i.unsure));
    assert!(pending[0].timeline_id < pending[1].timeline_id);

    let lease = lease(&f, "w").await;
    let (forwarded, comment) = (pending[0].timeline_id, pending[1].timeline_id);
    assert!(f
        .store
        .mark_journal(&lease, forwarded, JournalState::Sending)
        .await
        .unwrap());
    let pending = f
        .store
        .journal_pending(f.incident.id, f.integration.id, 10)
        .await
        .unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending[0].unsure, "sent without a confirmed answer");
    assert!(!pending[1].unsure);

    for id in [forwarded, comment] {
        assert!(f
            .store
            .mark_journal(&lease, id, JournalState::Written)
            .await
            .unwrap());
    }
    assert!(f
        .store
        .journal_pending(f.incident.id, f.integration.id, 10)
        .await
        .unwrap()
        .is_empty());
    // Limit is honoured.
    for i in 0..3 {
        f.store
            .add_comment(f.incident.id, "bob", &format!("c{i}"), Utc::now())
            .await
            .unwrap();
    }
    let two = f
        .store
        .journal_pending(f.incident.id, f.integration.id, 2)
        .await
        .unwrap();
    assert_eq!(
        two.iter()
            .map(|i| i.entry.detail.as_str())
            .collect::<Vec<_>>(),
        vec!["c0", "c1"]
    );
}

async fn only_the_lease_holder_marks_the_journal(db: TestDb) {
    let f = fixture(db).await;
    let pending = f
        .store
        .journal_pending(f.incident.id, f.integration.id, 10)
        .await
        .unwrap();
    let lease = lease(&f, "w").await;
    let mut stranger = lease.clone();
    stranger.owner = "someone else".into();
    assert!(!f
        .store
        .mark_journal(&stranger, pending[0].timeline_id, JournalState::Written)
        .await
        .unwrap());
    assert_eq!(
        f.store
            .journal_pending(f.incident.id, f.integration.id, 10)
            .await
            .unwrap(),
        pending
    );
}
