//! Sources and routing end to end: alerts arrive over /ingest, routing rules decide
//! which incidents reach ServiceNow, and the emulator shows what ServiceNow holds.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use snowbound_testkit::Backend;
use snowbound_testkit::{id, TestApp};
use uuid::Uuid;

pub(crate) async fn source(app: &TestApp, team: Uuid, kind: &str) -> (Uuid, String) {
    let answer = app
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": kind, "name": format!("{kind} source")}),
        )
        .await;
    (
        id(&answer),
        answer["ingest_url"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn rule(app: &TestApp, team: Uuid, name: &str, when: Value, then: Value) -> Uuid {
    id(&app
        .post(
            "/api/v1/routing-rules",
            json!({"team_id": team, "name": name, "when": when, "then": then}),
        )
        .await)
}

pub(crate) async fn alert(app: &TestApp, url: &str, body: Value) -> Value {
    let (status, answer) = app.send_alert(url, body).await.parts();
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer
}

pub(crate) fn incident_of(answer: &Value) -> Uuid {
    answer["incident_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no incident in {answer}"))
}

pub(crate) fn timeline_has(incident: &Value, kind: &str, actor: &str) -> bool {
    incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == kind && e["actor"] == actor)
}

#[tokio::test]
async fn a_webhook_key_updates_its_open_incident_and_opens_a_new_one_after_resolution() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let team = app.team("ops").await;
    app.integration(team, "always", json!({})).await;
    let (_, url) = source(&app, team, "webhook").await;

    let first = alert(
        &app,
        &url,
        json!({"dedup_key": "disk-db1", "title": "Disk 90%", "severity": "warning",
               "attributes": {"host": "db-1"}}),
    )
    .await;
    assert_eq!(first["action"], "opened");
    let incident = incident_of(&first);
    app.wait_synced(incident).await;
    assert_eq!(app.record(incident).unwrap()["urgency"], "2");

    let again = alert(
        &app,
        &url,
        json!({"dedup_key": "disk-db1", "title": "Disk 99%", "severity": "critical",
               "attributes": {"host": "db-1", "mount": "/var"}}),
    )
    .await;
    assert_eq!(again["action"], "updated");
    assert_eq!(incident_of(&again), incident);
    let same = alert(
        &app,
        &url,
        json!({"dedup_key": "disk-db1", "title": "Disk 99%", "severity": "critical",
               "attributes": {"host": "db-1", "mount": "/var"}}),
    )
    .await;
    assert_eq!(same["action"], "unchanged");

    let view = app.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(view["title"], "Disk 99%");
    assert_eq!(view["severity"], "critical");
    assert_eq!(view["attributes"]["mount"], "/var");
    assert!(timeline_has(
        &view,
        "severity_changed",
        "source webhook source"
    ));
    app.wait_synced(incident).await;
    assert_eq!(app.record(incident).unwrap()["urgency"], "1");

    let resolved = alert(
        &app,
        &url,
        json!({"dedup_key": "disk-db1", "status": "resolved"}),
    )
    .await;
    assert_eq!(resolved["action"], "resolved");
    app.wait_synced(incident).await;
    assert_eq!(app.record(incident).unwrap()["state"], "6");
    let ignored = alert(
        &app,
        &url,
        json!({"dedup_key": "disk-db1", "status": "resolved"}),
    )
    .await;
    assert_eq!(ignored["action"], "ignored");

    let reborn = alert(
        &app,
        &url,
        json!({"dedup_key": "disk-db1", "title": "Disk 91%", "severity": "warning"}),
    )
    .await;
    assert_eq!(reborn["action"], "opened");
    assert_ne!(incident_of(&reborn), incident);
    let incidents = app.get("/api/v1/incidents").await;
    assert_eq!(incidents.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn concurrent_alerts_with_one_key_open_one_incident() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let team = app.team("ops").await;
    let (_, url) = source(&app, team, "webhook").await;
    let sends = (0..12).map(|i| {
        app.send_alert(
            &url,
            json!({"dedup_key": "same", "title": format!("flap {i}"), "severity": "minor"}),
        )
    });
    let answers = futures::future::join_all(sends).await;
    let mut ids: Vec<Uuid> = answers
        .iter()
        .map(|answer| {
            assert_eq!(answer.status, 202, "{answer:?}");
            incident_of(&answer.body)
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1, "one incident for one key: {ids:?}");
    assert_eq!(
        app.get("/api/v1/incidents").await.as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn bad_bodies_and_unknown_urls_get_clear_4xx_answers() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let team = app.team("ops").await;
    let (source_id, url) = source(&app, team, "webhook").await;

    let cases = [
        (json!({"title": "t", "severity": "minor"}), "dedup_key"),
        (
            json!({"dedup_key": "k", "title": "t", "severity": "sev0"}),
            "severity",
        ),
        (json!({"dedup_key": "k", "severity": "minor"}), "title"),
        (
            json!({"dedup_key": "k", "title": "t", "severity": "minor", "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = app.send_alert(&url, body).await.parts();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let garbage = app.http.post(&url).body("{not json").send().await.unwrap();
    assert_eq!(garbage.status(), StatusCode::BAD_REQUEST);
    let wrong = url.replace("/ingest/sbi_", "/ingest/sbi_0");
    let (status, answer) = app.send_alert(&wrong, json!({})).await.parts();
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"]["code"], "not_found");
    assert!(app
        .get("/api/v1/incidents")
        .await
        .as_array()
        .unwrap()
        .is_empty());

    // A mapped word is a severity of this source.
    app.patch(
        &format!("/api/v1/sources/{source_id}"),
        json!({"severity_map": {"SEV0": "critical"}}),
    )
    .await;
    let opened = alert(
        &app,
        &url,
        json!({"dedup_key": "k", "title": "t", "severity": "sev0"}),
    )
    .await;
    let view = app
        .get(&format!("/api/v1/incidents/{}", incident_of(&opened)))
        .await;
    assert_eq!(view["severity"], "critical");
}

#[tokio::test]
async fn rotating_the_secret_retires_the_old_url_at_once() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let team = app.team("ops").await;
    let (source_id, old_url) = source(&app, team, "webhook").await;
    let shown = app.get(&format!("/api/v1/sources/{source_id}")).await;
    assert_eq!(shown["ingest_url"], old_url.as_str());

    let rotated = app
        .post(&format!("/api/v1/sources/{source_id}/rotate"), json!({}))
        .await;
    let new_url = rotated["ingest_url"].as_str().unwrap();
    assert_ne!(new_url, old_url);
    let body = json!({"dedup_key": "k", "title": "t", "severity": "minor"});
    let (status, _) = app.send_alert(&old_url, body.clone()).await.parts();
    assert_eq!(status, StatusCode::NOT_FOUND);
    alert(&app, new_url, body.clone()).await;

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/sources/{source_id}"),
            None,
        )
        .await
        .parts();
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.send_alert(new_url, body).await.parts();
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_incident_that_escalates_to_critical_is_forwarded_by_a_rule_once() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let team = app.team("ops").await;
    let after = app
        .integration(team, "always_after_forwarding", json!({}))
        .await;
    rule(
        &app,
        team,
        "criticals to ServiceNow",
        json!({"severity": ["critical"]}),
        json!({"forward_to": [after]}),
    )
    .await;
    let (_, url) = source(&app, team, "webhook").await;

    let opened = alert(
        &app,
        &url,
        json!({"dedup_key": "api-5xx", "title": "API errors", "severity": "warning"}),
    )
    .await;
    let incident = incident_of(&opened);
    let view = app.get(&format!("/api/v1/incidents/{incident}")).await;
    assert!(view["links"].as_array().unwrap().is_empty());

    alert(
        &app,
        &url,
        json!({"dedup_key": "api-5xx", "title": "API errors", "severity": "critical"}),
    )
    .await;
    app.wait_synced(incident).await;
    let record = app.record(incident).expect("escalation created the record");
    assert_eq!(record["urgency"], "1");
    let view = app.get(&format!("/api/v1/incidents/{incident}")).await;
    assert!(
        timeline_has(&view, "forwarded", "routing rule criticals to ServiceNow"),
        "{view}"
    );

    // Further changes follow the link; the rule does not forward again.
    app.post(
        &format!("/api/v1/incidents/{incident}/acknowledge"),
        json!({}),
    )
    .await;
    app.wait_synced(incident).await;
    let view = app.get(&format!("/api/v1/incidents/{incident}")).await;
    let forwards = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "forwarded")
        .count();
    assert_eq!(forwards, 1);
    let creates = app
        .writes_for(incident)
        .iter()
        .filter(|w| w.method == "POST")
        .count();
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn only_on_forwarding_gets_one_snapshot_from_a_rule_not_one_per_change() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let team = app.team("ops").await;
    let only = app.integration(team, "only_on_forwarding", json!({})).await;
    rule(
        &app,
        team,
        "db to SN",
        json!({"attributes": {"service": {"regex": "^db"}}}),
        json!({"forward_to": [only]}),
    )
    .await;
    let created = app
        .post(
            "/api/v1/incidents",
            json!({"team_id": team, "title": "Replica lag", "severity": "minor",
                   "attributes": {"service": "db-replica"}}),
        )
        .await;
    let incident = id(&created);
    app.wait_synced(incident).await;
    assert!(app.record(incident).is_some());
    app.patch(
        &format!("/api/v1/incidents/{incident}"),
        json!({"severity": "critical"}),
    )
    .await;
    app.wait_synced(incident).await;
    assert_eq!(app.writes_for(incident).len(), 1, "only the create");
    assert_eq!(app.record(incident).unwrap()["urgency"], "3");
}

#[tokio::test]
async fn exclude_from_keeps_matching_incidents_out_of_an_always_integration() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let team = app.team("ops").await;
    let always = app.integration(team, "always", json!({})).await;
    rule(
        &app,
        team,
        "no staging",
        json!({"attributes": {"env": {"contains": "staging"}}}),
        json!({"exclude_from": [always]}),
    )
    .await;
    let (_, url) = source(&app, team, "webhook").await;

    let staging = incident_of(
        &alert(
            &app,
            &url,
            json!({"dedup_key": "s", "title": "Staging down", "severity": "critical",
                   "attributes": {"env": "eu-staging"}}),
        )
        .await,
    );
    let prod = incident_of(
        &alert(
            &app,
            &url,
            json!({"dedup_key": "p", "title": "Prod down", "severity": "critical",
                   "attributes": {"env": "eu-prod"}}),
        )
        .await,
    );
    app.wait_synced(prod).await;
    assert!(app.record(prod).is_some());
    let view = app.get(&format!("/api/v1/incidents/{staging}")).await;
    assert!(view["links"].as_array().unwrap().is_empty(), "{view}");
    assert!(timeline_has(&view, "excluded", "routing rule no staging"));
    assert!(app.record(staging).is_none());

    // Still excluded after a change that keeps the rule matching.
    alert(
        &app,
        &url,
        json!({"dedup_key": "s", "title": "Staging still down", "severity": "critical",
               "attributes": {"env": "eu-staging"}}),
    )
    .await;
    let view = app.get(&format!("/api/v1/incidents/{staging}")).await;
    assert!(view["links"].as_array().unwrap().is_empty(), "{view}");
}
