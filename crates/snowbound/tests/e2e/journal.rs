//! Work notes and Closed records against the emulator (issue #17): comments and chosen
//! timeline events reach the record's journal exactly once, also when an answer is lost,
//! and each `on_closed` choice does what it says once an agent has closed the record.

use serde_json::json;
use snowbound_emulator::{Fault, User};
use snowbound_store::{ApiCallFilter, LinkState};
use snowbound_testkit::{eventually, on_both_backends, Backend, TestApp};
use uuid::Uuid;

const RECORD_PATCH: &str = "/api/now/table/incident/*";

/// The record's `work_notes` journal rows (`sys_journal_field`), oldest first.
fn work_notes(t: &TestApp, sys_id: &str) -> Vec<String> {
    t.emulator
        .journal("incident", sys_id)
        .into_iter()
        .filter(|e| e.element == "work_notes")
        .map(|e| e.value)
        .collect()
}

fn sys_id_of(t: &TestApp, incident: Uuid) -> String {
    t.record(incident).expect("record created")["sys_id"].clone()
}

async fn comment(t: &TestApp, incident: Uuid, text: &str) {
    t.post(
        &format!("/api/v1/incidents/{incident}/comments"),
        json!({ "text": text }),
    )
    .await;
}

async fn comments_and_acknowledgements_become_work_notes_exactly_once(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    t.integration(team, "always", json!({})).await;
    let incident = t.incident(team, "Disk full", "critical").await;
    t.wait_synced(incident).await;
    let sys_id = sys_id_of(&t, incident);
    assert!(work_notes(&t, &sys_id).is_empty(), "no note on create");

    comment(&t, incident, "looking at the disk now").await;
    t.wait_synced(incident).await;
    t.post(
        &format!("/api/v1/incidents/{incident}/acknowledge"),
        json!({}),
    )
    .await;
    t.wait_synced(incident).await;
    t.patch(
        &format!("/api/v1/incidents/{incident}"),
        json!({"severity": "minor"}),
    )
    .await;
    t.wait_synced(incident).await;
    // A change that is no note reconciles again: written notes are not written twice.
    t.patch(
        &format!("/api/v1/incidents/{incident}"),
        json!({"title": "Disk full on db-1"}),
    )
    .await;
    t.wait_synced(incident).await;

    let notes = work_notes(&t, &sys_id);
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(notes[0].starts_with("[Snowbound "), "{notes:?}");
    assert!(
        notes[0].ends_with("admin commented: looking at the disk now"),
        "{notes:?}"
    );
    assert!(notes[1].ends_with("Acknowledged by admin"), "{notes:?}");
    assert!(
        notes[2].ends_with("Severity critical → minor by admin"),
        "{notes:?}"
    );
    assert!(t
        .emulator
        .journal("incident", &sys_id)
        .iter()
        .all(|e| e.element != "comments"));
}

async fn a_note_whose_answer_is_lost_is_written_once(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let team = t.team("core").await;
    let integration = t.integration(team, "always", json!({})).await;
    let incident = t.incident(team, "Disk full", "critical").await;
    t.wait_synced(incident).await;
    let sys_id = sys_id_of(&t, incident);

    // The note's PATCH is applied, then the connection drops before the answer.
    t.emulator
        .add_fault(Fault::drop_after_write("PATCH", RECORD_PATCH).times(1));
    comment(&t, incident, "rotating logs").await;
    t.wait_synced(incident).await;

    let notes = work_notes(&t, &sys_id);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].ends_with("commented: rotating logs"));
    let requests = t.emulator.requests();
    assert!(requests
        .iter()
        .any(|r| r.fault.as_deref() == Some("drop_after_write")));
    let lookups: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/sys_journal_field"))
        .collect();
    assert_eq!(lookups.len(), 1, "the retry looked the note up first");
    assert!(lookups[0].query.contains(&sys_id), "{:?}", lookups[0]);
    let note_patches = t
        .writes_for(incident)
        .into_iter()
        .filter(|w| w.body.get("work_notes").is_some())
        .count();
    assert_eq!(note_patches, 1, "not sent again after the lookup found it");

    // The calls are in the integration's API call log.
    let logged = t
        .store()
        .list_api_calls(&ApiCallFilter {
            integration_id: Some(integration),
            incident_id: Some(incident),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(logged.iter().any(|c| c.url.contains("sys_journal_field")));
    assert!(logged.iter().any(|c| c
        .request_body
        .as_deref()
        .is_some_and(|b| b.contains("rotating logs"))));
}

/// An incident resolved in Snowbound and its record then closed by an agent.
async fn closed_by_an_agent(t: &TestApp, on_closed: &str) -> (Uuid, String) {
    let team = t.team("core").await;
    t.integration(team, "always", json!({"on_closed": on_closed}))
        .await;
    let incident = t.incident(team, "Disk full", "critical").await;
    t.post(
        &format!("/api/v1/incidents/{incident}/resolve"),
        json!({"comment": "freed space"}),
    )
    .await;
    t.wait_synced(incident).await;
    let record = t.record(incident).expect("record created");
    assert_eq!(record["state"], "6");
    t.emulator.upsert_user(User::new("agent", "pw", &["itil"]));
    let closed = t
        .emulator
        .update_as(
            "agent",
            "incident",
            &record["sys_id"],
            json!({"state": "7"}),
        )
        .expect("the agent closes the record");
    assert_eq!(closed["state"], "7");
    (incident, record["sys_id"].clone())
}

async fn link_of(t: &TestApp, incident: Uuid) -> serde_json::Value {
    t.get(&format!("/api/v1/incidents/{incident}")).await["links"][0].clone()
}

async fn skip_sends_nothing_to_a_closed_record_and_the_link_says_so(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (incident, sys_id) = closed_by_an_agent(&t, "skip").await;
    let writes_before = t.writes_for(incident).len();

    comment(&t, incident, "post-mortem scheduled").await;
    eventually("the link parked on the Closed record", || async {
        let links = t.store().links_of_incident(incident).await.unwrap();
        links[0].state == LinkState::Parked
    })
    .await;

    assert_eq!(
        t.writes_for(incident).len(),
        writes_before,
        "no update sent"
    );
    let record = t.emulator.record("incident", &sys_id).unwrap();
    assert_eq!(record["state"], "7");
    assert!(work_notes(&t, &sys_id).is_empty());
    let link = link_of(&t, incident).await;
    assert_eq!(link["state"], "parked");
    let error = link["last_error"].as_str().unwrap();
    assert!(
        error.contains("is Closed") && error.contains("skip"),
        "{error}"
    );
    assert_eq!(link["record_gone"], false);
}

/// Closed straight from open, so Snowbound has no reason to read it first: the lock on
/// Closed records refuses the update of an integration user who is no admin, and the
/// refusal is read as what it is.
async fn an_update_refused_by_the_closed_lock_is_skipped_too(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    t.emulator
        .upsert_user(User::new("integration", "pw", &["itil"]));
    t.emulator.upsert_user(User::new("agent", "pw", &["itil"]));
    let team = t.team("core").await;
    t.integration(
        team,
        "always",
        json!({"username": "integration", "password": "pw", "on_closed": "skip"}),
    )
    .await;
    let incident = t.incident(team, "Disk full", "critical").await;
    t.wait_synced(incident).await;
    let sys_id = sys_id_of(&t, incident);
    t.emulator
        .update_as(
            "agent",
            "incident",
            &sys_id,
            json!({"state": "7", "close_code": "Solution provided", "close_notes": "dup"}),
        )
        .expect("the agent closes the record");

    t.patch(
        &format!("/api/v1/incidents/{incident}"),
        json!({"severity": "minor"}),
    )
    .await;
    eventually("the link parked on the Closed record", || async {
        let links = t.store().links_of_incident(incident).await.unwrap();
        links[0].state == LinkState::Parked
    })
    .await;
    let link = link_of(&t, incident).await;
    let error = link["last_error"].as_str().unwrap();
    assert!(
        error.contains("is Closed") && error.contains("skip"),
        "{error}"
    );
    let record = t.emulator.record("incident", &sys_id).unwrap();
    assert_eq!(
        (record["state"].as_str(), record["urgency"].as_str()),
        ("7", "1")
    );
    let refused = t
        .writes_for(incident)
        .into_iter()
        .filter(|w| w.status == Some(403))
        .count();
    assert_eq!(refused, 1, "refused once, then read, not sent again");
}

async fn reopen_reopens_a_closed_record_before_updating_it(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (incident, sys_id) = closed_by_an_agent(&t, "reopen").await;
    let writes_before = t.writes_for(incident).len();

    t.post(&format!("/api/v1/incidents/{incident}/reopen"), json!({}))
        .await;
    comment(&t, incident, "it is back").await;
    t.wait_synced(incident).await;

    let writes: Vec<_> = t.writes_for(incident).split_off(writes_before);
    assert!(writes.len() >= 2, "{writes:?}");
    assert_eq!(writes[0].body, json!({"state": "1"}), "reopened first");
    assert_eq!(writes[0].status, Some(200));
    assert!(writes[1..]
        .iter()
        .any(|w| w.body.get("work_notes").is_some()));
    let record = t.emulator.record("incident", &sys_id).unwrap();
    assert_eq!(record["state"], "1");
    let notes = work_notes(&t, &sys_id);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].ends_with("commented: it is back"));
    assert_eq!(link_of(&t, incident).await["state"], "synced");
}

async fn new_record_gives_a_reopened_incident_a_new_record(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (incident, old_sys_id) = closed_by_an_agent(&t, "new_record").await;
    let old = t.emulator.record("incident", &old_sys_id).unwrap();

    t.post(&format!("/api/v1/incidents/{incident}/reopen"), json!({}))
        .await;
    t.wait_synced(incident).await;

    let records = t
        .emulator
        .records_by_correlation_id("incident", &incident.to_string());
    assert_eq!(records.len(), 2, "{records:?}");
    let new = records
        .iter()
        .find(|r| r["sys_id"] != old_sys_id)
        .expect("a new record");
    assert_eq!(new["state"], "1");
    assert_eq!(new["short_description"], "Disk full");
    assert_eq!(
        t.emulator.record("incident", &old_sys_id).unwrap(),
        old,
        "the Closed record is left as it was"
    );
    let link = link_of(&t, incident).await;
    assert_eq!(link["sys_id"], new["sys_id"].as_str());
    assert_eq!(link["number"], new["number"].as_str());
    assert_ne!(new["number"], old["number"]);
}

/// The new record's create is applied but its answer lost: the lookup that follows looks
/// past the Closed record with the same correlation id, so no third record appears.
async fn a_new_record_whose_create_answer_is_lost_is_adopted(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    let (incident, old_sys_id) = closed_by_an_agent(&t, "new_record").await;
    t.emulator
        .add_fault(Fault::drop_after_write("POST", "/api/now/table/incident").times(1));
    t.post(&format!("/api/v1/incidents/{incident}/reopen"), json!({}))
        .await;
    t.wait_synced(incident).await;

    assert!(t
        .emulator
        .requests()
        .iter()
        .any(|r| r.fault.as_deref() == Some("drop_after_write")));
    let records = t
        .emulator
        .records_by_correlation_id("incident", &incident.to_string());
    assert_eq!(records.len(), 2, "{records:?}");
    let new = records.iter().find(|r| r["sys_id"] != old_sys_id).unwrap();
    assert_eq!(
        link_of(&t, incident).await["sys_id"],
        new["sys_id"].as_str()
    );
    assert_eq!(
        t.emulator.record("incident", &old_sys_id).unwrap()["state"],
        "7"
    );
}

on_both_backends!(
    comments_and_acknowledgements_become_work_notes_exactly_once,
    a_note_whose_answer_is_lost_is_written_once,
    skip_sends_nothing_to_a_closed_record_and_the_link_says_so,
    an_update_refused_by_the_closed_lock_is_skipped_too,
    reopen_reopens_a_closed_record_before_updating_it,
    new_record_gives_a_reopened_incident_a_new_record,
    a_new_record_whose_create_answer_is_lost_is_adopted,
);
