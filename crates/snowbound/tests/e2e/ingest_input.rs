//! What senders put in alert bodies that the API would refuse: ingest keeps every alert
//! it can, on both backends alike. NUL (which PostgreSQL cannot store) becomes U+FFFD;
//! one bad alert in an Alertmanager body never costs its neighbours; Alertmanager's
//! over-long values are cut, the webhook's are refused by name.

use reqwest::StatusCode;
use serde_json::{json, Value};
use snowbound_testkit::Backend;
use snowbound_testkit::TestApp;

async fn source(app: &TestApp, kind: &str) -> String {
    let team = app.team("ops").await;
    let answer = app
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": kind, "name": kind}),
        )
        .await;
    answer["ingest_url"].as_str().unwrap().to_owned()
}

fn am_alert(fingerprint: &str, summary: &str, labels: Value) -> Value {
    json!({"status": "firing", "labels": labels, "annotations": {"summary": summary},
           "fingerprint": fingerprint})
}

async fn incidents(app: &TestApp) -> Vec<Value> {
    let mut list = app
        .get("/api/v1/incidents")
        .await
        .as_array()
        .unwrap()
        .clone();
    list.sort_by_key(|i| i["title"].as_str().unwrap_or_default().to_owned());
    list
}

async fn a_nul_in_an_alertmanager_body_loses_no_alert(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = source(&app, "alertmanager").await;
    let body = json!({"version": "4", "alerts": [
        am_alert("f1", "first", json!({"alertname": "A"})),
        am_alert("f2\u{0}", "second \u{0} alert", json!({"alertname": "B", "host\u{0}": "db\u{0}1"})),
        am_alert("f3", "third", json!({"alertname": "C"})),
    ]});
    for _ in 0..2 {
        let (status, answer) = app.send_alert(&url, body.clone()).await.parts();
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    }
    let stored = incidents(&app).await;
    let titles: Vec<&str> = stored
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["first", "second \u{FFFD} alert", "third"]);
    assert_eq!(stored[1]["attributes"]["host\u{FFFD}"], "db\u{FFFD}1");
}

#[tokio::test]
async fn a_nul_in_an_alertmanager_body_loses_no_alert_on_sqlite() {
    a_nul_in_an_alertmanager_body_loses_no_alert(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_nul_in_an_alertmanager_body_loses_no_alert_on_postgres() {
    a_nul_in_an_alertmanager_body_loses_no_alert(Backend::Postgres).await;
}

#[tokio::test]
async fn a_nul_in_a_webhook_alert_is_replaced_on_both_backends() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let url = source(&app, "webhook").await;
        let body = json!({"dedup_key": "k\u{0}1", "title": "disk\u{0}full", "severity": "minor",
                          "description": "d\u{0}", "attributes": {"a\u{0}": "b\u{0}"}});
        let (status, answer) = app.send_alert(&url, body.clone()).await.parts();
        assert_eq!(status, StatusCode::ACCEPTED, "{backend:?}: {answer}");
        assert_eq!(answer["dedup_key"], "k\u{FFFD}1");
        let (_, again) = app.send_alert(&url, body).await.parts();
        assert_eq!(again["action"], "unchanged", "{backend:?}: {again}");
        let view = app
            .get(&format!(
                "/api/v1/incidents/{}",
                answer["incident_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(view["title"], "disk\u{FFFD}full");
        assert_eq!(view["description"], "d\u{FFFD}");
        assert_eq!(view["attributes"]["a\u{FFFD}"], "b\u{FFFD}");
    }
}

#[tokio::test]
async fn one_malformed_alert_does_not_lose_its_neighbours_on_both_backends() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let url = source(&app, "alertmanager").await;
        let body = json!({"alerts": [
            am_alert("f1", "first", json!({"alertname": "A"})),
            {"status": "pending", "fingerprint": "f2"},
            {"status": "firing", "labels": {"n": 1}, "fingerprint": "f3"},
            am_alert(&"f".repeat(501), "too long a key", json!({})),
            am_alert("f5", "fifth", json!({"alertname": "E"})),
        ]});
        let (status, answer) = app.send_alert(&url, body).await.parts();
        assert_eq!(status, StatusCode::ACCEPTED, "{backend:?}: {answer}");
        let actions: Vec<&str> = answer["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            ["opened", "refused", "refused", "refused", "opened"]
        );
        let fields: Vec<&str> = answer["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["error"]["field"].as_str())
            .collect();
        assert_eq!(
            fields,
            [
                "alerts[1].status",
                "alerts[2].labels.n",
                "alerts[3].fingerprint"
            ]
        );
        let titles: Vec<String> = incidents(&app)
            .await
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(titles, ["fifth", "first"], "{backend:?}");

        // A body of nothing but bad alerts is refused as a whole, naming the first.
        let (status, answer) = app
            .send_alert(&url, json!({"alerts": [{"status": "pending"}]}))
            .await
            .parts();
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(answer["error"]["field"], "alerts[0].status");
    }
}

#[tokio::test]
async fn overlong_alert_values_are_cut_for_alertmanager_and_refused_for_webhooks() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let am = source(&app, "alertmanager").await;
    let long = "é".repeat(30_000);
    let mut alert = am_alert("f1", &long, json!({"alertname": "A", "host": long}));
    alert["annotations"]["description"] = json!(long);
    let (status, answer) = app
        .send_alert(&am, json!({"alerts": [alert]}))
        .await
        .parts();
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let view = app
        .get(&format!(
            "/api/v1/incidents/{}",
            answer["alerts"][0]["incident_id"].as_str().unwrap()
        ))
        .await;
    let chars = |v: &Value| v.as_str().unwrap().chars().count();
    assert_eq!(chars(&view["title"]), 1000);
    assert_eq!(chars(&view["description"]), 20_000);
    assert_eq!(chars(&view["attributes"]["host"]), 2000);

    let hook = app
        .post(
            "/api/v1/sources",
            json!({"team_id": view["team_id"], "type": "webhook", "name": "hook"}),
        )
        .await;
    let hook = hook["ingest_url"].as_str().unwrap();
    for (extra, field) in [
        (json!({"description": long}), "description"),
        (json!({"attributes": {"host": long}}), "attributes.host"),
        (json!({"attributes": {long.clone(): "x"}}), "attributes"),
    ] {
        let mut body = json!({"dedup_key": "k", "title": "t", "severity": "minor"});
        snowbound_testkit::merge(&mut body, extra);
        let (status, answer) = app.send_alert(hook, body).await.parts();
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{answer}"
        );
    }
    assert_eq!(incidents(&app).await.len(), 1);
}
