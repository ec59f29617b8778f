//! Issue #12 end to end: answers that are not ServiceNow's never double a record, the
//! API call log shows each team only what it may see, and a record deleted in ServiceNow
//! can be created again on request, once.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use snowbound_emulator::Fault;
use snowbound_store::LinkState;
use snowbound_testkit::Backend;
use snowbound_testkit::{eventually, id, TestApp};
use uuid::Uuid;

const INCIDENTS: &str = "/api/now/table/incident";

#[tokio::test]
async fn pages_in_front_of_the_instance_answering_creates_that_went_through_leave_one_record() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let team = t.team("core").await;
    t.integration(team, "always", json!({})).await;
    // A proxy, WAF or SSO page answers in ServiceNow's place after passing the create on.
    for status in [200, 302, 401, 403] {
        t.emulator
            .add_fault(Fault::html_after_write("POST", INCIDENTS, status).times(3));
        if status == 200 {
            // Its page may answer the lookups too: they are retried, never replaced by a
            // create.
            t.emulator
                .add_fault(Fault::html_after_write("GET", INCIDENTS, status).times(2));
        }
        let incident = t
            .incident(team, &format!("Behind a proxy {status}"), "critical")
            .await;
        t.wait_synced(incident).await;
        assert_eq!(
            t.emulator
                .records_by_correlation_id("incident", &incident.to_string())
                .len(),
            1,
            "HTTP {status}"
        );
        let creates = t
            .writes_for(incident)
            .iter()
            .filter(|r| r.method == "POST")
            .count();
        assert_eq!(creates, 1, "HTTP {status}: the create was repeated");
        t.emulator.clear_faults();
    }
}

async fn token(t: &TestApp, name: &str, team: Uuid) -> String {
    let answer = t
        .post("/api/v1/tokens", json!({"name": name, "team_ids": [team]}))
        .await;
    answer["token"].as_str().unwrap().to_owned()
}

async fn calls_as(t: &TestApp, token: Option<&str>, integration: Uuid) -> Vec<Value> {
    let path = format!("/api/v1/integrations/{integration}/api-calls");
    let (status, body) = match token {
        Some(token) => t.call_as(Method::GET, &path, token, None).await,
        None => t.call(Method::GET, &path, None).await,
    }
    .parts();
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

fn incidents_of(calls: &[Value]) -> Vec<Option<Uuid>> {
    let mut seen: Vec<Option<Uuid>> = calls
        .iter()
        .map(|c| c["incident_id"].as_str().map(|id| id.parse().unwrap()))
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

#[tokio::test]
async fn a_shared_integrations_call_log_shows_each_team_only_what_it_may_see() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let root = t.team("root").await;
    let shared = t.team("shared").await;
    let integration = t
        .integration(root, "always_after_forwarding", json!({}))
        .await;
    t.patch(
        &format!("/api/v1/integrations/{integration}"),
        json!({"team_ids": [shared]}),
    )
    .await;
    let forward = |incident: Uuid| {
        let t = &t;
        async move {
            t.post(
                &format!("/api/v1/incidents/{incident}/forward"),
                json!({"integration_id": integration}),
            )
            .await;
            t.wait_synced(incident).await;
            incident
        }
    };
    let secret = forward(
        t.incident(root, "Root-only payroll outage", "critical")
            .await,
    )
    .await;
    let theirs = forward(t.incident(shared, "Shared team disk", "minor").await).await;
    let root_token = token(&t, "root", root).await;
    let shared_token = token(&t, "shared", shared).await;
    // Something in front of the instance answers Test Connection with its own page.
    t.emulator
        .add_fault(Fault::html_after_write("GET", INCIDENTS, 200));
    let (status, _) = t
        .call_as(
            Method::POST,
            &format!("/api/v1/integrations/{integration}/test-connection"),
            &root_token,
            None,
        )
        .await
        .parts();
    assert_eq!(status, StatusCode::OK);

    let everything = calls_as(&t, None, integration).await;
    assert_eq!(
        incidents_of(&everything),
        [None, Some(secret), Some(theirs)]
    );
    let page = everything
        .iter()
        .find(|c| c["incident_id"].is_null() && c["url"].as_str().unwrap().contains("/incident"))
        .expect("the test connection call");
    assert!(page["response_body"]
        .as_str()
        .is_some_and(|b| b.contains("<html>")));

    let for_shared = calls_as(&t, Some(&shared_token), integration).await;
    assert_eq!(incidents_of(&for_shared), [Some(theirs)]);
    let text = Value::Array(for_shared).to_string();
    assert!(!text.contains("payroll"), "{text}");

    let for_root = calls_as(&t, Some(&root_token), integration).await;
    assert_eq!(incidents_of(&for_root), [None, Some(secret)]);
    for call in &for_root {
        // What answered was not ServiceNow: its body is for admins only.
        let body = call["response_body"].as_str().unwrap_or("");
        assert!(!body.contains("<html>"), "{call}");
    }
    assert!(for_root.iter().any(|c| c["response_body"]
        .as_str()
        .is_some_and(|b| b.contains("\"result\""))));
}

#[tokio::test]
async fn a_record_deleted_in_servicenow_is_created_again_on_request_once() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let team = t.team("core").await;
    let integration = t.integration(team, "always", json!({})).await;
    let incident = t
        .incident(team, "Deleted by a ServiceNow admin", "warning")
        .await;
    t.wait_synced(incident).await;
    let recreate = format!("/api/v1/incidents/{incident}/links/{integration}/recreate");
    let (status, body) = t.call(Method::POST, &recreate, None).await.parts();
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "a synced record is not gone: {body}"
    );

    let old = t.record(incident).unwrap()["sys_id"].clone();
    let deleted = t
        .http
        .delete(format!("{}{INCIDENTS}/{old}", t.emulator.base_url()))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    t.patch(
        &format!("/api/v1/incidents/{incident}"),
        json!({"severity": "critical"}),
    )
    .await;
    let (incident_id, integration_id): (Uuid, Uuid) = (incident, integration);
    eventually("the link parks", || async {
        t.store()
            .get_link(incident_id, integration_id)
            .await
            .unwrap()
            .state
            == LinkState::Parked
    })
    .await;
    let detail = t.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(detail["links"][0]["record_gone"], true, "{detail}");

    let answer = t.post(&recreate, json!({})).await;
    assert_eq!(id(&answer), incident);
    t.wait_synced(incident).await;
    let records = t
        .emulator
        .records_by_correlation_id("incident", &incident.to_string());
    assert_eq!(records.len(), 1);
    assert_ne!(records[0]["sys_id"], old);
    assert_eq!(
        records[0]["urgency"], "1",
        "the record holds the incident as it is now"
    );
    let (status, _) = t.call(Method::POST, &recreate, None).await.parts();
    assert_eq!(status, StatusCode::CONFLICT, "once is enough");
}
