//! A node killed mid-burst loses nothing and doubles nothing: the runtime running
//! Snowbound is dropped while reconciles are in flight, and a new node on the same
//! database finishes the work.

use std::time::Duration;

use serde_json::json;
use snowbound::App;
use snowbound_emulator::{Emulator, EmulatorConfig};
use snowbound_testkit::{start_when_free, test_config, Api, TestApp};

const INCIDENTS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_arrives_exactly_once_per_record_after_a_crash() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    // Slow enough that many calls are in flight when the node dies.
    emulator.set_latency(Duration::from_millis(40));
    let dir = tempfile::tempdir().unwrap();
    let instance = emulator.base_url();

    let config = {
        let mut c = test_config(&dir);
        // Far longer than the test may take: the restart frees the dead node's leases
        // instead of waiting for them (SQLite has one process at a time).
        c.lease_ms = 600_000;
        c
    };
    let first_config = config.clone();
    // The first node runs on its own runtime so it can be killed by dropping it.
    let accepted = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let accepted = runtime.block_on(async move {
            let app = App::start(first_config).await.unwrap();
            let api = Api::new(app.url());
            let team = api.post("/api/v1/teams", json!({"name": "core"})).await;
            api.post(
                "/api/v1/integrations",
                json!({"display_name": "SN", "root_team_id": team["id"], "type": "servicenow", "forwarding": "always",
                       "servicenow": {"instance_url": instance, "username": "admin", "password": "admin",
                                      "close_code": "Solution provided"}}),
            )
            .await;
            let mut accepted = Vec::new();
            for i in 0..INCIDENTS {
                let incident = api
                    .post("/api/v1/incidents", json!({"team_id": team["id"], "title": format!("Burst {i}"), "severity": "critical"}))
                    .await;
                let id = incident["id"].as_str().unwrap().to_owned();
                api.patch(&format!("/api/v1/incidents/{id}"), json!({"severity": "minor"})).await;
                api.post(&format!("/api/v1/incidents/{id}/resolve"), json!({"comment": format!("fixed {i}")})).await;
                accepted.push(id);
            }
            accepted
        });
        // Kill: every task of the node (server, engine, in-flight calls) stops here.
        runtime.shutdown_timeout(Duration::ZERO);
        accepted
    })
    .join()
    .unwrap();

    let finished_before_the_kill = accepted
        .iter()
        .filter(|id| {
            emulator
                .records_by_correlation_id("incident", id)
                .first()
                .is_some_and(|r| r["state"] == "6")
        })
        .count();
    assert!(
        finished_before_the_kill < INCIDENTS,
        "the node must die with work in flight for this test to mean anything"
    );

    // The dead runtime's SQLite connections close on their own threads, a moment after
    // it is gone: restart when it is free.
    let app = start_when_free(config.clone()).await;
    let t = TestApp::from_app(app, emulator, dir);
    for (i, incident) in accepted.iter().enumerate() {
        t.wait_synced(incident.parse().unwrap()).await;
        let records = t.emulator.records_by_correlation_id("incident", incident);
        assert_eq!(
            records.len(),
            1,
            "incident {i} has {} records",
            records.len()
        );
        let record = &records[0];
        assert_eq!(
            (
                record["state"].as_str(),
                record["urgency"].as_str(),
                record["close_notes"].as_str()
            ),
            ("6", "3", format!("fixed {i}").as_str())
        );
    }
    assert_eq!(t.emulator.records("incident").len(), INCIDENTS);
}
