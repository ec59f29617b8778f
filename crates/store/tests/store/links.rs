//! The link lifecycle as the engine meets it: leasing, revisions, outcomes — on SQLite
//! and on PostgreSQL.

use std::sync::Arc;

use crate::common::{team_and_integration, TestDb};
use chrono::{Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use snowbound_core::{
    new_id, Credentials, FieldMap, Incident, IncidentStatus, Integration, Severity,
};
use snowbound_store::{LeaseOutcome, LinkState, NewLink, SecretBox, Store, StoreError};

on_both_backends!(
    a_leased_link_is_not_leased_again_until_completed,
    an_expired_lease_is_taken_over_and_the_old_owner_cannot_complete,
    a_change_during_a_reconcile_leaves_the_link_pending,
    a_stale_incident_write_is_refused,
    parked_links_wake_when_the_settings_change_and_failing_integrations_lease_nothing,
    a_paused_integration_leases_nothing_until_the_pause_ends,
    a_database_refuses_a_different_secret_key,
    integration_settings_match_the_full_listing,
    a_held_lease_is_renewed_and_a_lost_or_expired_one_is_not,
    leasing_for_one_integration_leaves_the_others_links,
    releasing_every_lease_frees_the_links_and_marks_possible_creates,
);

struct Fixture {
    store: Arc<dyn Store>,
    integration: Integration,
    incident: Incident,
    _db: TestDb,
}

async fn fixture(db: TestDb) -> Fixture {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let now = Utc::now();
    let incident = Incident {
        id: new_id(),
        team_id: team.id,
        title: "t".into(),
        description: String::new(),
        severity: Severity::Critical,
        status: IncidentStatus::Open,
        attributes: Default::default(),
        resolve_comment: None,
        source_id: None,
        created_at: now,
        updated_at: now,
    };
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
        _db: db,
    }
}

fn soon() -> chrono::DateTime<Utc> {
    Utc::now() + Duration::seconds(30)
}

async fn a_leased_link_is_not_leased_again_until_completed(db: TestDb) {
    let f = fixture(db).await;
    let first = f
        .store
        .lease_due_links("a", Utc::now(), soon(), 10, None)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert!(f
        .store
        .lease_due_links("b", Utc::now(), soon(), 10, None)
        .await
        .unwrap()
        .is_empty());
    let synced = LeaseOutcome::Synced {
        sys_id: "s".into(),
        number: "INC1".into(),
        sent: FieldMap::from([("state".into(), "1".into())]),
        servicenow_state: Some("1".into()),
    };
    assert!(f.store.complete_lease(&first[0], &synced).await.unwrap());
    let link = f
        .store
        .get_link(f.incident.id, f.integration.id)
        .await
        .unwrap();
    assert_eq!(link.state, LinkState::Synced);
    assert_eq!(link.sys_id.as_deref(), Some("s"));
    assert_eq!(link.pushed["state"], "1");
    assert!(f
        .store
        .lease_due_links("b", Utc::now(), soon(), 10, None)
        .await
        .unwrap()
        .is_empty());
}

async fn an_expired_lease_is_taken_over_and_the_old_owner_cannot_complete(db: TestDb) {
    let f = fixture(db).await;
    let stale = f
        .store
        .lease_due_links("a", Utc::now(), Utc::now() - Duration::seconds(1), 10, None)
        .await
        .unwrap();
    let fresh = f
        .store
        .lease_due_links("b", Utc::now(), soon(), 10, None)
        .await
        .unwrap();
    assert_eq!(fresh.len(), 1);
    // The dead worker may have sent its create: the next one must look before creating.
    assert!(fresh[0].link.create_unsure);
    assert!(!stale[0].link.create_unsure);
    assert!(!f
        .store
        .complete_lease(&stale[0], &LeaseOutcome::UpToDate)
        .await
        .unwrap());
    assert!(f
        .store
        .complete_lease(&fresh[0], &LeaseOutcome::UpToDate)
        .await
        .unwrap());
}

async fn a_change_during_a_reconcile_leaves_the_link_pending(db: TestDb) {
    let f = fixture(db).await;
    let lease = f
        .store
        .lease_due_links("a", Utc::now(), soon(), 10, None)
        .await
        .unwrap()
        .remove(0);
    let mut changed = f.incident.clone();
    changed.severity = Severity::Minor;
    changed.updated_at = Utc::now() + Duration::milliseconds(5);
    f.store
        .update_incident(&changed, f.incident.updated_at, &[], &[])
        .await
        .unwrap();
    f.store
        .complete_lease(&lease, &LeaseOutcome::UpToDate)
        .await
        .unwrap();
    let link = f
        .store
        .get_link(f.incident.id, f.integration.id)
        .await
        .unwrap();
    assert_eq!(link.state, LinkState::Pending);
    assert_eq!(
        f.store
            .lease_due_links("a", Utc::now(), soon(), 10, None)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn a_stale_incident_write_is_refused(db: TestDb) {
    let f = fixture(db).await;
    let mut changed = f.incident.clone();
    changed.updated_at = Utc::now() + Duration::milliseconds(5);
    f.store
        .update_incident(&changed, f.incident.updated_at, &[], &[])
        .await
        .unwrap();
    let err = f
        .store
        .update_incident(&changed, f.incident.updated_at, &[], &[])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Stale));
}

async fn parked_links_wake_when_the_settings_change_and_failing_integrations_lease_nothing(
    db: TestDb,
) {
    let f = fixture(db).await;
    let lease = f
        .store
        .lease_due_links("a", Utc::now(), soon(), 10, None)
        .await
        .unwrap()
        .remove(0);
    f.store
        .complete_lease(
            &lease,
            &LeaseOutcome::Park {
                error: "403 Data Policy".into(),
            },
        )
        .await
        .unwrap();
    assert!(f
        .store
        .lease_due_links("a", Utc::now(), soon(), 10, None)
        .await
        .unwrap()
        .is_empty());
    let link = f
        .store
        .get_link(f.incident.id, f.integration.id)
        .await
        .unwrap();
    assert_eq!(
        (link.state, link.last_error.as_deref()),
        (LinkState::Parked, Some("403 Data Policy"))
    );

    f.store
        .update_integration(&f.integration, &Credentials::default())
        .await
        .unwrap();
    f.store
        .mark_integration_failing(f.integration.id, "401")
        .await
        .unwrap();
    assert!(f
        .store
        .lease_due_links("a", Utc::now(), soon(), 10, None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        f.store
            .integration_credentials(f.integration.id)
            .await
            .unwrap()
            .password
            .unwrap()
            .expose_secret(),
        "pw"
    );

    f.store
        .update_integration(
            &f.integration,
            &Credentials::basic(SecretString::from("new")),
        )
        .await
        .unwrap();
    assert_eq!(
        f.store
            .lease_due_links("a", Utc::now(), soon(), 10, None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        f.store
            .integration_credentials(f.integration.id)
            .await
            .unwrap()
            .password
            .unwrap()
            .expose_secret(),
        "new"
    );
}

async fn a_paused_integration_leases_nothing_until_the_pause_ends(db: TestDb) {
    let f = fixture(db).await;
    let until = Utc::now() + Duration::seconds(60);
    f.store
        .pause_integration(f.integration.id, until)
        .await
        .unwrap();
    assert!(f
        .store
        .lease_due_links("a", Utc::now(), soon(), 10, None)
        .await
        .unwrap()
        .is_empty());
    let due = f.store.next_due_at().await.unwrap().unwrap();
    assert_eq!(due.timestamp_millis(), until.timestamp_millis());
    assert_eq!(
        f.store
            .lease_due_links("a", until, soon() + Duration::seconds(60), 10, None)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn a_database_refuses_a_different_secret_key(db: TestDb) {
    drop(db.open(SecretBox::random()).await.unwrap());
    let err = db.open(SecretBox::random()).await.err().unwrap();
    assert!(matches!(err, StoreError::Secret(_)), "{err}");
}

async fn integration_settings_match_the_full_listing(db: TestDb) {
    let f = fixture(db).await;
    let full: Vec<Integration> = f
        .store
        .list_integrations()
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.integration)
        .collect();
    assert_eq!(f.store.list_integration_settings().await.unwrap(), full);
    // Stored times have millisecond precision, so compare the identity.
    assert_eq!(
        full.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![f.integration.id]
    );
}

async fn a_held_lease_is_renewed_and_a_lost_or_expired_one_is_not(db: TestDb) {
    let f = fixture(db).await;
    let now = Utc::now();
    let lease = f
        .store
        .lease_due_links("a", now, now + Duration::seconds(30), 10, None)
        .await
        .unwrap()
        .remove(0);
    let renewed = f
        .store
        .renew_leases(
            std::slice::from_ref(&lease),
            now,
            now + Duration::seconds(120),
        )
        .await
        .unwrap();
    assert_eq!(renewed, vec![true]);
    // Past the first expiry, before the renewed one: still held.
    assert!(f
        .store
        .lease_due_links("b", now + Duration::seconds(60), soon(), 10, None)
        .await
        .unwrap()
        .is_empty());
    // Expired without being taken over: not renewed either.
    assert_eq!(
        f.store
            .renew_leases(
                std::slice::from_ref(&lease),
                now + Duration::seconds(121),
                now + Duration::seconds(200)
            )
            .await
            .unwrap(),
        vec![false]
    );
    // Taken over: the old owner's renewal fails, the new owner's succeeds.
    let taken = f
        .store
        .lease_due_links(
            "b",
            now + Duration::seconds(121),
            now + Duration::seconds(200),
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    let both = [lease, taken[0].clone()];
    assert_eq!(
        f.store
            .renew_leases(
                &both,
                now + Duration::seconds(122),
                now + Duration::seconds(300)
            )
            .await
            .unwrap(),
        vec![false, true]
    );
    assert!(f
        .store
        .renew_leases(&[], now, now)
        .await
        .unwrap()
        .is_empty());
}

async fn leasing_for_one_integration_leaves_the_others_links(db: TestDb) {
    let f = fixture(db).await;
    let mut other = f.integration.clone();
    other.id = new_id();
    other.display_name = "SN 2".into();
    f.store
        .create_integration(&other, &Credentials::basic(SecretString::from("pw")))
        .await
        .unwrap();
    let mut incident = f.incident.clone();
    incident.id = new_id();
    let link = NewLink {
        incident_id: incident.id,
        integration_id: other.id,
        snapshot: None,
    };
    f.store
        .create_incident(&incident, &[], &[link])
        .await
        .unwrap();

    let only_other = f
        .store
        .lease_due_links("a", Utc::now(), soon(), 10, Some(other.id))
        .await
        .unwrap();
    assert_eq!(only_other.len(), 1);
    assert_eq!(only_other[0].link.integration_id, other.id);
    let rest = f
        .store
        .lease_due_links("a", Utc::now(), soon(), 10, None)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].link.integration_id, f.integration.id);
}

async fn releasing_every_lease_frees_the_links_and_marks_possible_creates(db: TestDb) {
    let f = fixture(db).await;
    let lease = f
        .store
        .lease_due_links("a", Utc::now(), soon(), 10, None)
        .await
        .unwrap()
        .remove(0);
    assert!(!lease.link.create_unsure);
    assert_eq!(f.store.release_all_leases().await.unwrap(), 1);
    // Free at once, not when the lease would have expired; its create may have happened.
    let again = f
        .store
        .lease_due_links("b", Utc::now(), soon(), 10, None)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].link.create_unsure);
    assert!(!f
        .store
        .complete_lease(&lease, &LeaseOutcome::UpToDate)
        .await
        .unwrap());

    // A link that has its record is not marked: an update may be repeated safely.
    let synced = LeaseOutcome::Synced {
        sys_id: "s".into(),
        number: "INC1".into(),
        sent: FieldMap::new(),
        servicenow_state: None,
    };
    assert!(f.store.complete_lease(&again[0], &synced).await.unwrap());
    f.store
        .retry_link(f.incident.id, f.integration.id)
        .await
        .unwrap();
    let with_record = f
        .store
        .lease_due_links("c", Utc::now(), soon(), 10, None)
        .await
        .unwrap();
    assert_eq!(with_record.len(), 1);
    assert_eq!(f.store.release_all_leases().await.unwrap(), 1);
    assert_eq!(f.store.release_all_leases().await.unwrap(), 0);
    let link = f
        .store
        .get_link(f.incident.id, f.integration.id)
        .await
        .unwrap();
    assert!(!link.create_unsure);
}
