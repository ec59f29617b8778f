//! Ingest reads the source, its team's integrations and routing rules from the node's
//! cache (issue #16). A change made over the API acts on the very next alert, and on
//! PostgreSQL a change made on one node acts on the other node's next alerts.

use reqwest::StatusCode;
use serde_json::{json, Value};
use snowbound_testkit::{eventually, id, Backend, TestApp};
use uuid::Uuid;

async fn webhook_source(app: &TestApp, team: Uuid) -> (Uuid, String) {
    let answer = app
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "webhook", "name": "alerts"}),
        )
        .await;
    (
        id(&answer),
        answer["ingest_url"].as_str().unwrap().to_owned(),
    )
}

fn firing(key: &str, severity: &str, env: &str) -> Value {
    json!({"dedup_key": key, "title": format!("{key} down"), "severity": severity,
           "attributes": {"env": env}})
}

/// The incident an accepted alert opened or updated, as the API shows it.
async fn accepted(app: &TestApp, url: &str, body: Value) -> Value {
    let (status, answer) = app.send_alert(url, body).await.parts();
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let incident = answer["incident_id"].as_str().expect("an incident");
    app.get(&format!("/api/v1/incidents/{incident}")).await
}

fn linked(incident: &Value) -> Vec<String> {
    incident["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["integration_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_change_acts_on_the_very_next_alert(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team("ops").await;
    let other = app.team("platform").await;
    let shared = app.integration(other, "always", json!({})).await;
    let path = format!("/api/v1/integrations/{shared}");
    app.patch(&path, json!({"team_ids": [team]})).await;
    let (source, url) = webhook_source(&app, team).await;

    // Every alert below follows one that filled the cache.
    let first = accepted(&app, &url, firing("a", "warning", "prod")).await;
    assert_eq!(linked(&first), vec![shared.to_string()]);

    // The source's severity map.
    let (status, answer) = app
        .send_alert(&url, firing("b", "sev0", "prod"))
        .await
        .parts();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    app.patch(
        &format!("/api/v1/sources/{source}"),
        json!({"severity_map": {"sev0": "critical"}}),
    )
    .await;
    let mapped = accepted(&app, &url, firing("b", "sev0", "prod")).await;
    assert_eq!(mapped["severity"], "critical");

    // A routing rule, then an edit of it.
    let rule = id(&app
        .post(
            "/api/v1/routing-rules",
            json!({"team_id": team, "name": "no staging",
                   "when": {"attributes": {"env": {"equals": "staging"}}},
                   "then": {"exclude_from": [shared]}}),
        )
        .await);
    let excluded = accepted(&app, &url, firing("c", "minor", "staging")).await;
    assert!(linked(&excluded).is_empty(), "{excluded}");
    app.patch(
        &format!("/api/v1/routing-rules/{rule}"),
        json!({"when": {"attributes": {"env": {"equals": "test"}}}}),
    )
    .await;
    let included = accepted(&app, &url, firing("d", "minor", "staging")).await;
    assert_eq!(linked(&included), vec![shared.to_string()]);

    // The integration no longer serves the team.
    app.patch(&path, json!({"team_ids": []})).await;
    let unshared = accepted(&app, &url, firing("e", "minor", "prod")).await;
    assert!(linked(&unshared).is_empty(), "{unshared}");

    // The secret, then the source itself.
    let rotated = app
        .post(&format!("/api/v1/sources/{source}/rotate"), json!({}))
        .await;
    let new_url = rotated["ingest_url"].as_str().unwrap();
    let (status, _) = app
        .send_alert(&url, firing("f", "minor", "prod"))
        .await
        .parts();
    assert_eq!(status, StatusCode::NOT_FOUND);
    accepted(&app, new_url, firing("f", "minor", "prod")).await;
    let deleted = app.try_delete(&format!("/api/v1/sources/{source}")).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    let (status, _) = app
        .send_alert(new_url, firing("g", "minor", "prod"))
        .await
        .parts();
    assert_eq!(status, StatusCode::NOT_FOUND);
}

snowbound_testkit::on_both_backends!(a_change_acts_on_the_very_next_alert);

/// Node B caches what node A changes; A's announcement makes B forget it. B's entries
/// would otherwise live for a minute, far past `eventually`'s patience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_change_on_one_node_acts_on_the_other_nodes_next_alert() {
    let a = TestApp::spawn(Backend::Postgres).await;
    let b = a.another_node().await;
    let team = a.team("ops").await;
    let integration = a.integration(team, "always", json!({})).await;
    let (source, url) = webhook_source(&a, team).await;
    let url_on_b = url.replace(&a.api.base, &b.api.base);

    let first = accepted(&b, &url_on_b, firing("a", "warning", "prod")).await;
    assert_eq!(linked(&first), vec![integration.to_string()]);
    let (status, _) = b
        .send_alert(&url_on_b, firing("b", "sev0", "prod"))
        .await
        .parts();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    a.patch(
        &format!("/api/v1/sources/{source}"),
        json!({"severity_map": {"sev0": "critical"}}),
    )
    .await;
    eventually("node B maps sev0", || async {
        b.send_alert(&url_on_b, firing("b", "sev0", "prod"))
            .await
            .status
            == 202
    })
    .await;

    a.post(
        "/api/v1/routing-rules",
        json!({"team_id": team, "name": "no staging",
               "when": {"attributes": {"env": {"equals": "staging"}}},
               "then": {"exclude_from": [integration]}}),
    )
    .await;
    let mut probe = 0;
    eventually("node B applies the new rule", || {
        probe += 1;
        let (b, url) = (&b, &url_on_b);
        async move {
            let key = format!("probe-{probe}");
            linked(&accepted(b, url, firing(&key, "minor", "staging")).await).is_empty()
        }
    })
    .await;

    a.post(&format!("/api/v1/sources/{source}/rotate"), json!({}))
        .await;
    eventually("node B refuses the rotated URL", || async {
        b.send_alert(&url_on_b, firing("c", "minor", "prod"))
            .await
            .status
            == 404
    })
    .await;
}
