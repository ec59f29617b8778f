//! Field mappings against the emulator (issue #17): what ServiceNow ends up holding
//! when templates, display values, routing rules' fields and the update matrix are set.

use serde_json::json;
use snowbound_testkit::{on_both_backends, Backend, TestApp};

const NETWORK_L2: &str = "287ee6fea9fe198100ada7950d0b1b73";
const SERVICE_DESK: &str = "d625dccec0a8016700a222a0f7900d06";
const DB_1: &str = "27d32778c0a8000b00db970eeaa60f16";

async fn an_alertmanager_label_reaches_cmdb_ci_and_a_display_group_its_sys_id(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("sre").await;
    t.integration(
        team,
        "always",
        json!({"fields": [
            {"field": "cmdb_ci", "value": "{{ attributes.instance }}", "when": "create",
             "display": true},
            {"field": "assignment_group", "value": "Network L2", "when": "always",
             "display": true},
            {"field": "category", "value": "{{ attributes.missing }}network", "when": "create"},
        ]}),
    )
    .await;
    let source = t
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "alertmanager", "name": "prometheus"}),
        )
        .await;
    let ingest_url = source["ingest_url"].as_str().unwrap().to_owned();
    let alert = json!({"version": "4", "alerts": [{
        "status": "firing", "fingerprint": "f1",
        "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db-1"},
        "annotations": {"summary": "Disk full on db-1"},
    }]});
    let answer = t.http.post(&ingest_url).json(&alert).send().await.unwrap();
    assert!(answer.status().is_success(), "{answer:?}");
    let incidents = t.get("/api/v1/incidents").await;
    let incident = snowbound_testkit::id(&incidents[0]);

    t.wait_synced(incident).await;
    let record = t.record(incident).expect("record created");
    assert_eq!(
        record["cmdb_ci"], DB_1,
        "the label resolved to the CI's sys_id"
    );
    assert_eq!(record["assignment_group"], NETWORK_L2);
    assert_eq!(
        record["category"], "network",
        "a missing placeholder renders empty"
    );
    let writes = t.writes_for(incident);
    let display_writes: Vec<_> = writes
        .iter()
        .filter(|w| w.query.contains("sysparm_input_display_value=true"))
        .collect();
    assert_eq!(display_writes.len(), 1, "{writes:?}");
    assert_eq!(display_writes[0].body["assignment_group"], "Network L2");
    assert!(writes[0].body.get("assignment_group").is_none());
}

async fn rules_route_criticals_and_minors_to_different_groups(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("payments").await;
    t.integration(
        team,
        "always",
        json!({"fields": [
            {"field": "assignment_group", "value": "Service Desk", "when": "always",
             "display": true},
        ]}),
    )
    .await;
    t.post(
        "/api/v1/routing-rules",
        json!({"team_id": team, "name": "criticals to network",
               "when": {"severity": ["critical"]},
               "then": {"set_fields": {"assignment_group": "Network L2"}}}),
    )
    .await;
    let critical = t.incident(team, "Checkout down", "critical").await;
    let minor = t.incident(team, "Slow report", "minor").await;
    t.wait_synced(critical).await;
    t.wait_synced(minor).await;
    assert_eq!(t.record(critical).unwrap()["assignment_group"], NETWORK_L2);
    assert_eq!(t.record(minor).unwrap()["assignment_group"], SERVICE_DESK);
}

async fn severity_sync_off_sends_no_severity_patch(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("payments").await;
    t.integration(team, "always", json!({"updates": {"severity": false}}))
        .await;
    let incident = t.incident(team, "Checkout down", "critical").await;
    t.wait_synced(incident).await;
    t.patch(
        &format!("/api/v1/incidents/{incident}"),
        json!({"severity": "minor"}),
    )
    .await;
    t.wait_synced(incident).await;
    let writes = t.writes_for(incident);
    assert_eq!(writes.len(), 1, "only the create: {writes:?}");
    assert_eq!(t.record(incident).unwrap()["urgency"], "1");
}

on_both_backends!(
    an_alertmanager_label_reaches_cmdb_ci_and_a_display_group_its_sys_id,
    rules_route_criticals_and_minors_to_different_groups,
    severity_sync_off_sends_no_severity_patch,
);
