//! The seed's "What this integration does" and "Forwarding settings", driven over HTTP
//! with ServiceNow played by the emulator; assertions are on what ServiceNow holds and
//! on the exact writes it received.

use serde_json::{json, Value};
use snowbound_testkit::Backend;
use snowbound_testkit::{body_fields, TestApp};

fn fields(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn always_creates_every_incident_and_keeps_the_record_in_step(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("payments").await;
    t.integration(
        team,
        "always",
        json!({"severity": {"secondary_field": "impact",
                            "secondary_map": {"critical": "1", "warning": "2", "minor": "3"}}}),
    )
    .await;
    let long_title = format!("Checkout down {}", "x".repeat(300));
    let incident = snowbound_testkit::id(
        &t.post(
            "/api/v1/incidents",
            json!({"team_id": team, "title": long_title, "severity": "critical", "description": "5xx on /pay"}),
        )
        .await,
    );

    t.wait_synced(incident).await;
    let record = t.record(incident).expect("record created");
    assert_eq!(record["short_description"].chars().count(), 160);
    assert!(record["short_description"].starts_with("Checkout down xxx"));
    assert_eq!(
        record["description"],
        format!(
            "5xx on /pay\n\nSnowbound incident: {}/incidents/{incident}",
            t.base
        )
    );
    assert_eq!(record["correlation_id"], incident.to_string());
    assert_eq!(record["correlation_display"], "Snowbound");
    assert_eq!(
        (
            record["state"].as_str(),
            record["urgency"].as_str(),
            record["impact"].as_str()
        ),
        ("1", "1", "1")
    );
    assert_eq!(
        record["priority"], "1",
        "ServiceNow derives priority from urgency × impact"
    );
    let writes = t.writes_for(incident);
    assert_eq!(writes.len(), 1);
    assert_eq!(
        (writes[0].method.as_str(), writes[0].status),
        ("POST", Some(201))
    );
    let headers_ok = writes[0].body.is_object();
    assert!(headers_ok, "the create carries a JSON object");

    // Severity change: only the severity fields travel, with the change's work note.
    t.patch(
        &format!("/api/v1/incidents/{incident}"),
        json!({"severity": "minor"}),
    )
    .await;
    t.wait_synced(incident).await;
    let writes = t.writes_for(incident);
    assert_eq!(writes.len(), 2);
    assert_eq!(writes[1].method, "PATCH");
    let mut sent = body_fields(&writes[1]);
    let note = sent.remove("work_notes").unwrap_or_default();
    assert!(
        note.ends_with("Severity critical → minor by admin"),
        "{note}"
    );
    assert_eq!(sent, fields(&[("impact", "3"), ("urgency", "3")]));

    // Resolve without a comment: the configured fallback close notes.
    t.post(&format!("/api/v1/incidents/{incident}/resolve"), json!({}))
        .await;
    t.wait_synced(incident).await;
    let writes = t.writes_for(incident);
    assert_eq!(
        body_fields(&writes[2]),
        fields(&[
            ("close_code", "Solution provided"),
            ("close_notes", "Resolved from Snowbound"),
            ("state", "6")
        ])
    );
    let record = t.record(incident).unwrap();
    assert_eq!(record["state"], "6");
    assert_eq!(record["close_notes"], "Resolved from Snowbound");
    assert!(!record["resolved_at"].is_empty());

    // Reopen: back to the open state, nothing else.
    t.post(&format!("/api/v1/incidents/{incident}/reopen"), json!({}))
        .await;
    t.wait_synced(incident).await;
    let writes = t.writes_for(incident);
    assert_eq!(body_fields(&writes[3]), fields(&[("state", "1")]));
    assert_eq!(t.record(incident).unwrap()["state"], "1");

    // Resolve with a comment: the comment is the close notes, sent with the state again.
    t.post(
        &format!("/api/v1/incidents/{incident}/resolve"),
        json!({"comment": "Rolled back deploy 4711"}),
    )
    .await;
    t.wait_synced(incident).await;
    let writes = t.writes_for(incident);
    assert_eq!(writes.len(), 5);
    assert_eq!(
        body_fields(&writes[4]),
        fields(&[
            ("close_code", "Solution provided"),
            ("close_notes", "Rolled back deploy 4711"),
            ("state", "6")
        ])
    );
    let record = t.record(incident).unwrap();
    assert_eq!(
        (record["state"].as_str(), record["close_notes"].as_str()),
        ("6", "Rolled back deploy 4711")
    );

    // The incident shows its ServiceNow record.
    let detail = t.get(&format!("/api/v1/incidents/{incident}")).await;
    let link = &detail["links"][0];
    assert_eq!(link["sys_id"], record["sys_id"].as_str());
    assert_eq!(link["number"], record["number"].as_str());
    assert_eq!(link["state"], "synced");
    assert_eq!(link["last_error"], Value::Null);
}

async fn always_after_forwarding_sends_nothing_until_a_forward_then_follows_changes(
    backend: Backend,
) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    let integration = t
        .integration(team, "always_after_forwarding", json!({}))
        .await;
    let incident = t.incident(team, "Queue backlog", "warning").await;

    // Not forwarded: no link, so nothing can ever be sent.
    let detail = t.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(detail["links"], json!([]));

    t.post(
        &format!("/api/v1/incidents/{incident}/forward"),
        json!({"integration_id": integration}),
    )
    .await;
    t.wait_synced(incident).await;
    let record = t.record(incident).expect("created on forward");
    assert_eq!(
        (record["state"].as_str(), record["urgency"].as_str()),
        ("1", "2")
    );

    t.patch(
        &format!("/api/v1/incidents/{incident}"),
        json!({"severity": "critical"}),
    )
    .await;
    t.post(
        &format!("/api/v1/incidents/{incident}/acknowledge"),
        json!({}),
    )
    .await;
    t.wait_synced(incident).await;
    assert_eq!(t.record(incident).unwrap()["urgency"], "1");
    // Acknowledged counts as open when no acknowledged state is mapped: no state write.
    assert!(t
        .writes_for(incident)
        .iter()
        .skip(1)
        .all(|w| !body_fields(w).contains_key("state")));

    // The forward is on the timeline, naming the integration.
    let detail = t.get(&format!("/api/v1/incidents/{incident}")).await;
    let timeline = detail["timeline"].as_array().unwrap();
    assert!(timeline.iter().any(|e| e["detail"]
        .as_str()
        .unwrap_or("")
        .contains("SN always_after_forwarding")));
}

async fn an_incident_resolved_before_its_first_forward_is_created_resolved(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    let integration = t
        .integration(team, "always_after_forwarding", json!({}))
        .await;
    let incident = t.incident(team, "Flapping probe", "minor").await;
    t.post(
        &format!("/api/v1/incidents/{incident}/resolve"),
        json!({"comment": "Probe fixed"}),
    )
    .await;
    t.post(
        &format!("/api/v1/incidents/{incident}/forward"),
        json!({"integration_id": integration}),
    )
    .await;
    t.wait_synced(incident).await;

    let writes = t.writes_for(incident);
    assert_eq!(
        writes.len(),
        1,
        "one create, already resolved (the data policy accepts it)"
    );
    let record = t.record(incident).unwrap();
    assert_eq!(
        (
            record["state"].as_str(),
            record["close_code"].as_str(),
            record["close_notes"].as_str()
        ),
        ("6", "Solution provided", "Probe fixed")
    );
}

async fn only_on_forwarding_sends_the_snapshot_and_nothing_after_it(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    let integration = t.integration(team, "only_on_forwarding", json!({})).await;
    let incident = t.incident(team, "Cache misses", "warning").await;
    t.post(
        &format!("/api/v1/incidents/{incident}/forward"),
        json!({"integration_id": integration}),
    )
    .await;
    t.wait_synced(incident).await;
    assert_eq!(t.record(incident).unwrap()["urgency"], "2");

    // Changes after the forward stay in Snowbound.
    t.patch(
        &format!("/api/v1/incidents/{incident}"),
        json!({"severity": "critical", "title": "Cache down"}),
    )
    .await;
    t.post(
        &format!("/api/v1/incidents/{incident}/resolve"),
        json!({"comment": "Restarted"}),
    )
    .await;
    t.wait_synced(incident).await;
    assert_eq!(
        t.writes_for(incident).len(),
        1,
        "no update after an only-on-forwarding forward"
    );
    let record = t.record(incident).unwrap();
    assert_eq!(
        (record["state"].as_str(), record["urgency"].as_str()),
        ("1", "2")
    );

    // A new forward sends the new snapshot to the same record.
    t.post(
        &format!("/api/v1/incidents/{incident}/forward"),
        json!({"integration_id": integration}),
    )
    .await;
    t.wait_synced(incident).await;
    let writes = t.writes_for(incident);
    assert_eq!(writes.len(), 2);
    assert_eq!(writes[1].method, "PATCH");
    assert_eq!(
        body_fields(&writes[1]),
        fields(&[
            ("close_code", "Solution provided"),
            ("close_notes", "Restarted"),
            ("short_description", "Cache down"),
            ("state", "6"),
            ("urgency", "1"),
        ])
    );
    assert_eq!(t.emulator.records("incident").len(), 1);
}

async fn always_serves_only_its_teams_and_forwarding_across_teams_is_refused(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let ours = t.team("ours").await;
    let theirs = t.team("theirs").await;
    let integration = t.integration(ours, "always", json!({})).await;
    let foreign = t.incident(theirs, "Not ours", "critical").await;
    let mine = t.incident(ours, "Ours", "critical").await;
    t.wait_synced(mine).await;
    assert!(t.record(foreign).is_none());

    let (status, answer) = t
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/incidents/{foreign}/forward"),
            Some(json!({"integration_id": integration})),
        )
        .await
        .parts();
    assert!(status.is_client_error(), "{status}: {answer}");
    assert_eq!(answer["error"]["field"], "integration_id");
}

snowbound_testkit::on_both_backends!(
    always_creates_every_incident_and_keeps_the_record_in_step,
    always_after_forwarding_sends_nothing_until_a_forward_then_follows_changes,
    an_incident_resolved_before_its_first_forward_is_created_resolved,
    only_on_forwarding_sends_the_snapshot_and_nothing_after_it,
    always_serves_only_its_teams_and_forwarding_across_teams_is_refused,
);
