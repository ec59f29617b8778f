//! Routing's state on both backends: the routing history (which also makes a rule fire
//! once per incident), links held for a rule's delay, and reordering a team's rules.

use chrono::{Duration, Utc};
use secrecy::SecretString;
use snowbound_core::routing::{Actions, Conditions, RoutingRule};
use snowbound_core::{new_id, Credentials, IncidentStatus, Team};
use snowbound_store::{
    InboundIncidentChange, InboundWrite, IncidentWrite, LinkHold, NewLink, RoutingWrite,
    RuleFiring, SecretBox, StoreError,
};
use uuid::Uuid;

use crate::common::{incident, team_and_integration, TestDb};

on_both_backends!(
    firings_commit_with_their_incident_and_list_newest_first_per_team,
    a_held_link_waits_out_its_delay_and_a_resolve_within_it_drops_the_link_unsent,
    a_reorder_renumbers_every_rule_or_none,
    a_resolve_heard_from_servicenow_drops_the_other_held_links,
);

fn firing(team: Uuid, rule: Uuid, kind: &str, detail: &str) -> RuleFiring {
    RuleFiring {
        team_id: team,
        rule_id: rule,
        rule_name: format!("rule {detail}"),
        incident_id: None,
        kind: kind.into(),
        detail: detail.into(),
        at: Utc::now(),
    }
}

async fn firings_commit_with_their_incident_and_list_newest_first_per_team(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let other = Team {
        id: new_id(),
        name: "other".into(),
        created_at: Utc::now(),
    };
    store.create_team(&other).await.unwrap();
    let (a, b) = (new_id(), new_id());
    let opened = incident(&team);
    let write = IncidentWrite::Create {
        incident: opened.clone(),
        timeline: vec![],
        links: vec![],
        dedup_key: None,
        routing: RoutingWrite {
            firings: vec![
                firing(team.id, a, "fired", "1"),
                firing(team.id, b, "fired", "2"),
            ],
            ..RoutingWrite::default()
        },
    };
    let answers = store.write_incidents(&[write]).await.unwrap();
    assert!(answers[0].is_ok(), "{}: {answers:?}", db.name());
    store
        .record_firings(&[
            firing(team.id, b, "discarded", "3"),
            firing(other.id, a, "discarded", "4"),
        ])
        .await
        .unwrap();

    let mut fired = store.fired_rules(opened.id).await.unwrap();
    fired.sort();
    let mut expected = vec![a, b];
    expected.sort();
    assert_eq!(fired, expected, "{}", db.name());

    let ours = store.routing_history(Some(&[team.id]), 10).await.unwrap();
    let details: Vec<&str> = ours.iter().map(|f| f.detail.as_str()).collect();
    assert_eq!(details, ["3", "2", "1"], "{}", db.name());
    assert_eq!(ours[1].incident_id, Some(opened.id));
    assert_eq!(ours[0].incident_id, None);
    assert_eq!(store.routing_history(None, 2).await.unwrap().len(), 2);
    assert!(store
        .routing_history(Some(&[]), 10)
        .await
        .unwrap()
        .is_empty());

    // A refused write records none of its firings.
    let mut stale = opened.clone();
    stale.updated_at += Duration::milliseconds(1);
    let write = IncidentWrite::Update {
        incident: stale,
        expected_updated_at: opened.updated_at - Duration::milliseconds(5),
        timeline: vec![],
        new_links: vec![],
        routing: RoutingWrite {
            firings: vec![firing(team.id, new_id(), "fired", "5")],
            ..RoutingWrite::default()
        },
    };
    let answers = store.write_incidents(&[write]).await.unwrap();
    assert!(matches!(answers[0], Err(StoreError::Stale)), "{answers:?}");
    assert_eq!(store.fired_rules(opened.id).await.unwrap().len(), 2);
}

async fn a_held_link_waits_out_its_delay_and_a_resolve_within_it_drops_the_link_unsent(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, integration) = team_and_integration(&*store).await;
    let rule = new_id();
    let hold = |seconds: i64| LinkHold {
        until: Utc::now() + Duration::seconds(seconds),
        rule_id: rule,
        rule_name: "wait".into(),
    };
    let held = incident(&team);
    let elapsed = incident(&team);
    for (incident, hold) in [(&held, hold(600)), (&elapsed, hold(-1))] {
        let write = IncidentWrite::Create {
            incident: incident.clone(),
            timeline: vec![],
            links: vec![NewLink {
                incident_id: incident.id,
                integration_id: integration.id,
                snapshot: None,
            }],
            dedup_key: None,
            routing: RoutingWrite {
                hold: Some(hold),
                ..RoutingWrite::default()
            },
        };
        assert!(store.write_incidents(&[write]).await.unwrap()[0].is_ok());
    }
    // New settings wake every link, but not one before its hold ends.
    store
        .update_integration(&integration, &Credentials::basic(SecretString::from("pw")))
        .await
        .unwrap();
    let now = Utc::now();
    let leased = store
        .lease_due_links("w", now, now + Duration::seconds(30), 10, None)
        .await
        .unwrap();
    let ids: Vec<Uuid> = leased.iter().map(|l| l.link.incident_id).collect();
    assert_eq!(ids, vec![elapsed.id], "{}", db.name());

    for (incident, kept) in [(&held, 0), (&elapsed, 1)] {
        let mut resolved = incident.clone();
        resolved.status = IncidentStatus::Resolved;
        resolved.updated_at = incident.updated_at + Duration::milliseconds(1);
        let write = IncidentWrite::Update {
            incident: resolved,
            expected_updated_at: incident.updated_at,
            timeline: vec![],
            new_links: vec![],
            routing: RoutingWrite {
                drop_held_at: Some(Utc::now()),
                ..RoutingWrite::default()
            },
        };
        assert!(store.write_incidents(&[write]).await.unwrap()[0].is_ok());
        let links = store.links_of_incident(incident.id).await.unwrap();
        assert_eq!(links.len(), kept, "{}", db.name());
    }
    let timeline = store.timeline(held.id).await.unwrap();
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].kind, "not_sent");
    assert_eq!(timeline[0].actor, "routing rule wait");
    assert!(timeline[0].detail.contains("not sent to SN"));
    let history = store.routing_history(Some(&[team.id]), 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].rule_id, history[0].kind.as_str()),
        (rule, "not_sent")
    );
    assert!(store.timeline(elapsed.id).await.unwrap().is_empty());
}

async fn a_reorder_renumbers_every_rule_or_none(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let now = Utc::now();
    let mut ids = Vec::new();
    for position in [5, 5, 9] {
        let rule = RoutingRule {
            id: new_id(),
            team_id: team.id,
            name: format!("r{position}"),
            position,
            when: Conditions::default(),
            then: Actions {
                stop: true,
                ..Actions::default()
            },
            created_at: now,
            updated_at: now,
        };
        store.create_routing_rule(&rule).await.unwrap();
        ids.push(rule.id);
    }
    let positions = |rules: Vec<RoutingRule>| -> Vec<(Uuid, i64)> {
        rules.into_iter().map(|r| (r.id, r.position)).collect()
    };
    let before = positions(store.list_routing_rules(Some(&[team.id])).await.unwrap());
    for wrong in [
        vec![ids[2], ids[0]],
        vec![ids[2], ids[0], ids[0]],
        vec![ids[2], ids[0], ids[1], new_id()],
    ] {
        let refused = store.reorder_routing_rules(team.id, &wrong).await;
        assert!(
            matches!(refused, Err(StoreError::Conflict { field: "rule_ids" })),
            "{}: {refused:?}",
            db.name()
        );
        let after = positions(store.list_routing_rules(Some(&[team.id])).await.unwrap());
        assert_eq!(after, before, "nothing moved");
    }
    store
        .reorder_routing_rules(team.id, &[ids[2], ids[0], ids[1]])
        .await
        .unwrap();
    let after = positions(store.list_routing_rules(Some(&[team.id])).await.unwrap());
    assert_eq!(
        after,
        vec![(ids[2], 0), (ids[0], 1), (ids[1], 2)],
        "{}",
        db.name()
    );
}

async fn a_resolve_heard_from_servicenow_drops_the_other_held_links(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, first) = team_and_integration(&*store).await;
    let second = snowbound_core::Integration {
        id: new_id(),
        display_name: "SN 2".into(),
        ..first.clone()
    };
    store
        .create_integration(&second, &Credentials::basic(SecretString::from("pw")))
        .await
        .unwrap();
    let opened = incident(&team);
    let link = |integration: Uuid| NewLink {
        incident_id: opened.id,
        integration_id: integration,
        snapshot: None,
    };
    store
        .create_incident(&opened, &[], &[link(first.id)])
        .await
        .unwrap();
    let write = IncidentWrite::Update {
        incident: opened.clone(),
        expected_updated_at: opened.updated_at,
        timeline: vec![],
        new_links: vec![link(second.id)],
        routing: RoutingWrite {
            hold: Some(LinkHold {
                until: Utc::now() + Duration::seconds(600),
                rule_id: new_id(),
                rule_name: "wait".into(),
            }),
            ..RoutingWrite::default()
        },
    };
    assert!(store.write_incidents(&[write]).await.unwrap()[0].is_ok());

    let mut resolved = opened.clone();
    resolved.status = IncidentStatus::Resolved;
    resolved.updated_at = opened.updated_at + Duration::milliseconds(1);
    store
        .apply_inbound(&InboundWrite {
            incident_id: opened.id,
            integration_id: first.id,
            change: Some(InboundIncidentChange {
                incident: resolved,
                expected_updated_at: opened.updated_at,
                timeline: vec![],
            }),
            mod_count: 2,
            pushed: Default::default(),
            notes: Default::default(),
            reconcile: false,
            park: None,
        })
        .await
        .unwrap();
    let links: Vec<Uuid> = store
        .links_of_incident(opened.id)
        .await
        .unwrap()
        .iter()
        .map(|l| l.integration_id)
        .collect();
    assert_eq!(links, vec![first.id], "{}", db.name());
    let kinds: Vec<String> = store
        .timeline(opened.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, ["not_sent"]);
}
