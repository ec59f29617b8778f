//! The engine's promises when ServiceNow is slow, flaky, strict or says no: every
//! change arrives, nothing is created twice, and a refusal shows ServiceNow's words.

use std::time::Duration;

use serde_json::json;
use snowbound_emulator::{EmulatorConfig, Fault, User};
use snowbound_testkit::Backend;
use snowbound_testkit::{eventually, TestApp};

const INCIDENTS: &str = "/api/now/table/incident";

async fn fifty_quick_changes_coalesce_into_a_few_calls(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    t.integration(team, "always", json!({})).await;
    // A real instance takes tens of milliseconds per call; changes meanwhile pile up.
    t.emulator.set_latency(Duration::from_millis(100));
    let incident = t.incident(team, "Flapping", "critical").await;
    let severities = ["warning", "minor", "critical"];
    for i in 0..50 {
        t.patch(
            &format!("/api/v1/incidents/{incident}"),
            json!({"severity": severities[i % 3]}),
        )
        .await;
    }
    t.wait_synced(incident).await;

    let writes = t.writes_for(incident);
    assert!(
        writes.len() <= 6,
        "50 changes took {} ServiceNow calls",
        writes.len()
    );
    // 49 % 3 == 1: the last change set minor.
    assert_eq!(t.record(incident).unwrap()["urgency"], "3");
}

async fn a_create_whose_answer_is_lost_is_adopted_not_repeated(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    t.integration(team, "always", json!({})).await;
    t.emulator
        .add_fault(Fault::drop_after_write("POST", INCIDENTS).times(1));
    let incident = t.incident(team, "Ambiguous", "critical").await;
    t.wait_synced(incident).await;

    assert_eq!(
        t.emulator
            .records_by_correlation_id("incident", &incident.to_string())
            .len(),
        1
    );
    let lookups = t
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.query.contains("correlation_id"))
        .count();
    assert_eq!(
        lookups, 1,
        "the retry looked the record up by correlation_id first"
    );
    let detail = t.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(
        detail["links"][0]["number"],
        t.record(incident).unwrap()["number"].as_str()
    );
}

/// The record a lost create made is adopted with what that create sent counted as sent:
/// an agent's edit made before the adoption stays, and only Snowbound's own later
/// changes go to the record.
async fn an_agents_edit_before_a_lost_create_is_adopted_is_not_overwritten(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    t.integration(team, "always", json!({})).await;
    t.emulator
        .add_fault(Fault::drop_after_write("POST", INCIDENTS).times(1));
    // Lookups fail until the agent has edited the record the lost create made.
    t.emulator
        .add_fault(Fault::status("GET", INCIDENTS, 503).always());
    let incident = t.incident(team, "Ambiguous", "critical").await;
    let correlation_id = incident.to_string();
    let records = || {
        t.emulator
            .records_by_correlation_id("incident", &correlation_id)
    };
    eventually("the lost create's record", || async {
        !records().is_empty()
    })
    .await;
    let created = records().pop().unwrap();
    assert_eq!(created["urgency"], "1");
    t.emulator
        .upsert_user(User::new("beth.agent", "agent", &["itil"]));
    t.emulator
        .update_as(
            "beth.agent",
            "incident",
            &created["sys_id"],
            json!({"urgency": "2"}),
        )
        .unwrap();
    t.post(
        &format!("/api/v1/incidents/{incident}/resolve"),
        json!({"comment": "disk freed"}),
    )
    .await;
    t.emulator.clear_faults();
    eventually("the resolve reaches the adopted record", || async {
        records().first().is_some_and(|r| r["state"] == "6")
    })
    .await;
    t.wait_synced(incident).await;

    let records = records();
    assert_eq!(records.len(), 1, "adopted, not created twice");
    assert_eq!(records[0]["urgency"], "2", "the agent's edit stays");
    assert_eq!(records[0]["close_code"], "Solution provided");
    let patches: Vec<_> = t
        .writes_for(incident)
        .into_iter()
        .filter(|w| w.method == "PATCH")
        .collect();
    assert!(
        patches.iter().all(|w| w.body.get("urgency").is_none()),
        "no PATCH re-sent what the lost create wrote: {patches:?}"
    );
}

async fn a_burst_of_server_errors_delays_but_does_not_lose_changes(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    t.integration(team, "always", json!({})).await;
    t.emulator
        .add_fault(Fault::status("POST", INCIDENTS, 503).times(3));
    let incident = t.incident(team, "Flaky instance", "warning").await;
    t.wait_synced(incident).await;
    t.emulator
        .add_fault(Fault::status("PATCH", INCIDENTS, 502).times(3));
    t.post(
        &format!("/api/v1/incidents/{incident}/resolve"),
        json!({"comment": "done"}),
    )
    .await;
    t.wait_synced(incident).await;

    let record = t.record(incident).unwrap();
    assert_eq!(
        (record["state"].as_str(), record["close_notes"].as_str()),
        ("6", "done")
    );
    // A 503 to a POST is ambiguous, so creates were looked up before being repeated.
    assert_eq!(t.emulator.records("incident").len(), 1);
}

async fn a_rate_limit_pauses_the_integration_for_retry_after(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    t.integration(team, "always", json!({})).await;
    t.emulator.add_fault(
        Fault::status("POST", INCIDENTS, 429)
            .with_retry_after(1)
            .times(1),
    );
    let incident = t.incident(team, "Storm", "critical").await;
    t.wait_synced(incident).await;

    let calls: Vec<_> = t
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with(INCIDENTS))
        .collect();
    let limited = calls
        .iter()
        .find(|r| r.status == Some(429))
        .expect("a 429 was answered");
    let next = calls
        .iter()
        .find(|r| r.received_at > limited.received_at)
        .expect("a later call");
    assert!(
        next.received_at - limited.received_at >= chrono::Duration::milliseconds(1000),
        "the next call came {} ms after the 429 with Retry-After: 1",
        (next.received_at - limited.received_at).num_milliseconds()
    );
}

async fn a_rejected_change_parks_with_servicenows_words_and_goes_through_after_a_settings_fix(
    backend: Backend,
) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    // A close-notes field the instance does not have: ServiceNow ignores it, and its
    // data policy then refuses the move to Resolved.
    let integration = t
        .integration(team, "always", json!({"close_notes_field": "u_resolution"}))
        .await;
    let incident = t.incident(team, "Misconfigured", "minor").await;
    t.wait_synced(incident).await;
    t.post(
        &format!("/api/v1/incidents/{incident}/resolve"),
        json!({"comment": "Fixed the disk"}),
    )
    .await;

    eventually("the link is parked", || async {
        let detail = t.get(&format!("/api/v1/incidents/{incident}")).await;
        detail["links"][0]["state"] == "parked"
    })
    .await;
    let detail = t.get(&format!("/api/v1/incidents/{incident}")).await;
    let error = detail["links"][0]["last_error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("mandatory"), "last_error: {error}");
    assert!(
        error.contains("Resolution notes"),
        "last_error names the missing field: {error}"
    );
    assert_eq!(
        detail["status"], "resolved",
        "the incident itself is untouched"
    );
    assert_eq!(t.record(incident).unwrap()["state"], "1");

    t.patch(
        &format!("/api/v1/integrations/{integration}"),
        json!({"servicenow": {"close_notes_field": "close_notes"}}),
    )
    .await;
    t.wait_synced(incident).await;
    let record = t.record(incident).unwrap();
    assert_eq!(
        (record["state"].as_str(), record["close_notes"].as_str()),
        ("6", "Fixed the disk")
    );
}

async fn revoked_credentials_mark_the_integration_failing_and_a_new_password_resumes(
    backend: Backend,
) {
    let t = TestApp::spawn_with(
        backend,
        EmulatorConfig {
            users: vec!["snowbound:right:itil".parse().unwrap()],
            ..EmulatorConfig::default()
        },
        |_| {},
    )
    .await;
    let team = t.team("core").await;
    let integration = t
        .integration(
            team,
            "always",
            json!({"username": "snowbound", "password": "wrong"}),
        )
        .await;
    let incident = t.incident(team, "Locked out", "critical").await;

    eventually("the integration shows as failing", || async {
        let body = t.get(&format!("/api/v1/integrations/{integration}")).await;
        body["health"]["failing"].is_string()
    })
    .await;
    assert!(t.record(incident).is_none());
    let detail = t.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(detail["links"][0]["state"], "waiting");

    t.patch(
        &format!("/api/v1/integrations/{integration}"),
        json!({"servicenow": {"password": "right"}}),
    )
    .await;
    t.wait_synced(incident).await;
    assert!(t.record(incident).is_some());
    let body = t.get(&format!("/api/v1/integrations/{integration}")).await;
    assert!(body["health"]["failing"].is_null());
}

async fn a_deleted_servicenow_record_is_parked_not_recreated(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    t.integration(team, "always", json!({})).await;
    let incident = t.incident(team, "Deleted upstream", "critical").await;
    t.wait_synced(incident).await;
    let sys_id = t.record(incident).unwrap()["sys_id"].clone();
    let deleted = t
        .http
        .delete(format!("{}{INCIDENTS}/{sys_id}", t.emulator.base_url()))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);

    t.post(&format!("/api/v1/incidents/{incident}/resolve"), json!({}))
        .await;
    eventually("the link is parked", || async {
        let detail = t.get(&format!("/api/v1/incidents/{incident}")).await;
        detail["links"][0]["state"] == "parked"
    })
    .await;
    let detail = t.get(&format!("/api/v1/incidents/{incident}")).await;
    assert!(detail["links"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("no longer exists"));
    assert!(t.emulator.records("incident").is_empty(), "not re-created");
}

async fn without_retry_after_the_rate_limit_cool_down_grows(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    t.integration(team, "always", json!({})).await;
    t.emulator
        .add_fault(Fault::status("POST", INCIDENTS, 429).times(2));
    let incident = t.incident(team, "Storm without header", "critical").await;
    t.wait_synced(incident).await;

    let posts: Vec<_> = t
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.path == INCIDENTS && r.method == "POST")
        .collect();
    assert_eq!(
        posts.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![Some(429), Some(429), Some(201)]
    );
    let first_gap = posts[1].received_at - posts[0].received_at;
    let second_gap = posts[2].received_at - posts[1].received_at;
    // The test server's cool-down is 150 ms, doubling: 150 ms, then 300 ms.
    assert!(
        first_gap >= chrono::Duration::milliseconds(150),
        "first pause {first_gap}"
    );
    assert!(
        second_gap >= chrono::Duration::milliseconds(300),
        "second pause {second_gap}"
    );
}

async fn a_call_that_hangs_times_out_and_the_link_retries(backend: Backend) {
    let t = TestApp::spawn_with(backend, EmulatorConfig::default(), |c| {
        c.servicenow_timeout_ms = 300
    })
    .await;
    let team = t.team("core").await;
    t.integration(team, "always", json!({})).await;
    let incident = t.incident(team, "Slow instance", "critical").await;
    t.wait_synced(incident).await;
    t.emulator
        .add_fault(Fault::hang("PATCH", INCIDENTS).times(1));
    t.patch(
        &format!("/api/v1/incidents/{incident}"),
        json!({"severity": "warning"}),
    )
    .await;
    t.wait_synced(incident).await;

    assert_eq!(t.record(incident).unwrap()["urgency"], "2");
    let patches: Vec<_> = t
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2, "the hung PATCH and its retry");
    assert_eq!(
        patches[0].status, None,
        "the first PATCH was never answered"
    );
    let calls = t
        .get(&format!("/api/v1/incidents/{incident}/api-calls"))
        .await;
    let timed_out = calls
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["status"].is_null() && c["error"].is_string());
    assert!(timed_out, "the API call log shows the timeout: {calls}");
}

async fn a_create_refused_by_an_acl_explains_itself_on_the_link(backend: Backend) {
    let t = TestApp::spawn_with(
        backend,
        EmulatorConfig {
            users: vec!["reader:pw:incident_reader,personalize_choices"
                .parse()
                .unwrap()],
            ..EmulatorConfig::default()
        },
        |_| {},
    )
    .await;
    let team = t.team("core").await;
    let integration = t
        .integration(
            team,
            "always",
            json!({"username": "reader", "password": "pw"}),
        )
        .await;
    // Test Connection passes: it only reads, and says so.
    let report = t
        .post(
            &format!("/api/v1/integrations/{integration}/test-connection"),
            json!({}),
        )
        .await;
    assert_eq!(report["ok"], true, "{report}");
    assert!(report.to_string().contains("first create"), "{report}");

    let incident = t.incident(team, "Read-only user", "critical").await;
    eventually("the link is parked", || async {
        t.get(&format!("/api/v1/incidents/{incident}")).await["links"][0]["state"] == "parked"
    })
    .await;
    let detail = t.get(&format!("/api/v1/incidents/{incident}")).await;
    let error = detail["links"][0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("create"),
        "plain words about create rights: {error}"
    );
    assert!(
        error.contains("ACL") || error.contains("role"),
        "names what to ask for: {error}"
    );
    assert!(t.emulator.records("incident").is_empty());
}

snowbound_testkit::on_both_backends!(
    fifty_quick_changes_coalesce_into_a_few_calls,
    a_create_whose_answer_is_lost_is_adopted_not_repeated,
    an_agents_edit_before_a_lost_create_is_adopted_is_not_overwritten,
    a_burst_of_server_errors_delays_but_does_not_lose_changes,
    a_rate_limit_pauses_the_integration_for_retry_after,
    a_rejected_change_parks_with_servicenows_words_and_goes_through_after_a_settings_fix,
    revoked_credentials_mark_the_integration_failing_and_a_new_password_resumes,
    a_deleted_servicenow_record_is_parked_not_recreated,
    without_retry_after_the_rate_limit_cool_down_grows,
    a_call_that_hangs_times_out_and_the_link_retries,
    a_create_refused_by_an_acl_explains_itself_on_the_link,
);
