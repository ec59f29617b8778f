//! The API call log filtered to what a team may see, and re-creating a deleted record —
//! on SQLite and on PostgreSQL.

use crate::common::{team_and_integration, TestDb};
use chrono::{Duration, Utc};
use snowbound_core::{new_id, FieldMap, Incident, IncidentStatus, Severity, Team};
use snowbound_store::{
    ApiCallFilter, ApiCallRecord, LeaseOutcome, LinkState, NewLink, SecretBox, Store, StoreError,
};
use uuid::Uuid;

on_both_backends!(
    the_call_log_shows_a_team_only_the_calls_of_incidents_it_sees,
    recreating_forgets_the_record_of_a_parked_link_only,
);

async fn incident(store: &dyn Store, team: Uuid, links_to: Option<Uuid>) -> Incident {
    let now = Utc::now();
    let incident = Incident {
        id: new_id(),
        team_id: team,
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
    let links: Vec<NewLink> = links_to
        .into_iter()
        .map(|integration_id| NewLink {
            incident_id: incident.id,
            integration_id,
            snapshot: None,
        })
        .collect();
    store.create_incident(&incident, &[], &links).await.unwrap();
    incident
}

fn call(integration_id: Uuid, incident_id: Option<Uuid>, url: &str) -> ApiCallRecord {
    ApiCallRecord {
        integration_id,
        incident_id,
        at: Utc::now(),
        method: "GET".into(),
        url: url.into(),
        status: Some(200),
        duration_ms: 1,
        request_body: None,
        response_body: None,
        error: None,
    }
}

async fn the_call_log_shows_a_team_only_the_calls_of_incidents_it_sees(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (root, integration) = team_and_integration(&*store).await;
    let shared = Team {
        id: new_id(),
        name: "shared".into(),
        created_at: Utc::now(),
    };
    store.create_team(&shared).await.unwrap();
    let of_root = incident(&*store, root.id, None).await;
    let of_shared = incident(&*store, shared.id, None).await;
    for (incident, url) in [
        (Some(of_root.id), "root"),
        (Some(of_shared.id), "shared"),
        (None, "test-connection"),
    ] {
        store
            .record_api_calls(
                integration.id,
                incident,
                &[call(integration.id, incident, url)],
            )
            .await
            .unwrap();
    }
    let urls = |filter: ApiCallFilter| {
        let store = &store;
        async move {
            let mut urls: Vec<String> = store
                .list_api_calls(&ApiCallFilter {
                    integration_id: Some(integration.id),
                    ..filter
                })
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.url)
                .collect();
            urls.sort();
            urls
        }
    };
    assert_eq!(
        urls(ApiCallFilter::default()).await,
        ["root", "shared", "test-connection"]
    );
    assert_eq!(
        urls(ApiCallFilter {
            visible_team_ids: Some(vec![shared.id]),
            ..ApiCallFilter::default()
        })
        .await,
        ["shared"]
    );
    assert_eq!(
        urls(ApiCallFilter {
            visible_team_ids: Some(vec![root.id]),
            include_without_incident: true,
            ..ApiCallFilter::default()
        })
        .await,
        ["root", "test-connection"]
    );
    assert_eq!(
        urls(ApiCallFilter {
            visible_team_ids: Some(vec![]),
            ..ApiCallFilter::default()
        })
        .await,
        Vec::<String>::new()
    );
}

async fn recreating_forgets_the_record_of_a_parked_link_only(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let incident = incident(&*store, team.id, Some(integration.id)).await;
    let soon = Utc::now() + Duration::seconds(30);
    let lease = || async {
        store
            .lease_due_links("w", Utc::now(), soon, 10, None)
            .await
            .unwrap()
            .remove(0)
    };
    let synced = LeaseOutcome::Synced {
        sys_id: "abc".into(),
        number: "INC0010001".into(),
        sent: FieldMap::from([("short_description".to_owned(), "t".to_owned())]),
        servicenow_state: Some("1".into()),
    };
    assert!(store.complete_lease(&lease().await, &synced).await.unwrap());
    // A synced link keeps its record: re-creating is for records that are gone.
    assert!(matches!(
        store.recreate_link(incident.id, integration.id).await,
        Err(StoreError::NotFound)
    ));

    store.retry_link(incident.id, integration.id).await.unwrap();
    let gone = LeaseOutcome::Park {
        error: "record no longer exists".into(),
    };
    assert!(store.complete_lease(&lease().await, &gone).await.unwrap());
    let parked = store.get_link(incident.id, integration.id).await.unwrap();
    store
        .recreate_link(incident.id, integration.id)
        .await
        .unwrap();
    let link = store.get_link(incident.id, integration.id).await.unwrap();
    assert_eq!(link.state, LinkState::Pending);
    assert_eq!((link.sys_id, link.number), (None, None));
    assert!(link.pushed.is_empty());
    assert!(link.create_unsure);
    assert!(link.rev > parked.rev);
    let leased = lease().await;
    assert_eq!(leased.link.sys_id, None);
    assert!(leased.link.create_unsure);
}
