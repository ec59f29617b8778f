//! The grouped counts behind the `/metrics` gauges: incidents by status, links by
//! integration and stored state; states without rows are absent.

use chrono::{Duration, Utc};
use secrecy::SecretString;
use snowbound_core::{new_id, Credentials, IncidentStatus};
use snowbound_store::{LeaseOutcome, LinkCount, LinkState, NewLink, SecretBox, StateCounts};

use crate::common::{incident, team_and_integration, TestDb};

on_both_backends!(counts_follow_incidents_and_link_outcomes);

async fn counts_follow_incidents_and_link_outcomes(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    assert_eq!(store.state_counts().await.unwrap(), StateCounts::default());

    let (team, first) = team_and_integration(&*store).await;
    let mut second = first.clone();
    second.id = new_id();
    second.display_name = "SN 2".into();
    store
        .create_integration(&second, &Credentials::basic(SecretString::from("pw")))
        .await
        .unwrap();
    let link = |incident_id, integration_id| NewLink {
        incident_id,
        integration_id,
        snapshot: None,
    };
    let open = [incident(&team), incident(&team)];
    for one in &open {
        store
            .create_incident(one, &[], &[link(one.id, first.id)])
            .await
            .unwrap();
    }
    let mut resolved = incident(&team);
    resolved.status = IncidentStatus::Resolved;
    store
        .create_incident(&resolved, &[], &[link(resolved.id, second.id)])
        .await
        .unwrap();

    // One link of each integration leased: the first's is synced, the second's parked.
    for integration in [first.id, second.id] {
        let lease = store
            .lease_due_links(
                "t",
                Utc::now(),
                Utc::now() + Duration::seconds(60),
                1,
                Some(integration),
            )
            .await
            .unwrap()
            .remove(0);
        let outcome = if integration == first.id {
            LeaseOutcome::Synced {
                sys_id: "a".repeat(32),
                number: "INC0010001".into(),
                sent: Default::default(),
                servicenow_state: Some("1".into()),
            }
        } else {
            LeaseOutcome::Park {
                error: "403".into(),
            }
        };
        assert!(store.complete_lease(&lease, &outcome).await.unwrap());
    }

    let counts = store.state_counts().await.unwrap();
    let mut incidents = counts.incidents.clone();
    incidents.sort_by_key(|(status, _)| status.to_string());
    let mut expected = vec![(IncidentStatus::Open, 2), (IncidentStatus::Resolved, 1)];
    expected.sort_by_key(|(status, _)| status.to_string());
    assert_eq!(incidents, expected);
    let mut links = counts.links.clone();
    links.sort_by_key(|c| (c.integration_id, c.state.as_str()));
    let mut expected = vec![
        LinkCount {
            integration_id: first.id,
            state: LinkState::Pending,
            count: 1,
        },
        LinkCount {
            integration_id: first.id,
            state: LinkState::Synced,
            count: 1,
        },
        LinkCount {
            integration_id: second.id,
            state: LinkState::Parked,
            count: 1,
        },
    ];
    expected.sort_by_key(|c| (c.integration_id, c.state.as_str()));
    assert_eq!(links, expected);
}
