//! The real `snowbound serve` process, killed with SIGKILL mid-burst and stopped with
//! SIGTERM: every accepted change still reaches ServiceNow, nothing is created twice, and
//! every alert answered 2xx before a SIGKILL is still there after it.

use std::time::Duration;

use futures::future::join_all;
use serde_json::{json, Value};
use snowbound_emulator::{Emulator, EmulatorConfig};
use snowbound_testkit::node::Node;
use snowbound_testkit::{eventually, ADMIN_TOKEN};

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    /// `None` when the node did not answer with a success (it may be dead).
    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Option<Value> {
        let response = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.json().await.ok()
    }

    async fn post(&self, path: &str, body: Value) -> Option<Value> {
        self.send(reqwest::Method::POST, path, body).await
    }

    async fn get(&self, path: &str) -> Value {
        self.send(reqwest::Method::GET, path, Value::Null)
            .await
            .expect("GET succeeds")
    }

    async fn setup(&self, instance: &str) -> String {
        let team = self
            .post("/api/v1/teams", json!({"name": "core"}))
            .await
            .unwrap();
        self.post(
            "/api/v1/integrations",
            json!({"display_name": "SN", "root_team_id": team["id"], "type": "servicenow", "forwarding": "always",
                   "servicenow": {"instance_url": instance, "username": "admin", "password": "admin",
                                  "close_code": "Solution provided"}}),
        )
        .await
        .unwrap();
        team["id"].as_str().unwrap().to_owned()
    }
}

/// The expected ServiceNow fields of an incident as Snowbound holds it.
fn expected(incident: &Value) -> (String, String, String) {
    let urgency = match incident["severity"].as_str().unwrap() {
        "critical" => "1",
        "warning" => "2",
        _ => "3",
    };
    let resolved = incident["status"] == "resolved";
    let state = if resolved { "6" } else { "1" };
    let notes = if resolved {
        incident["resolve_comment"]
            .as_str()
            .unwrap_or("Resolved from Snowbound")
    } else {
        ""
    };
    (state.into(), urgency.into(), notes.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_then_restart_loses_no_accepted_change_and_creates_nothing_twice() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.set_latency(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(crate::SNOWBOUND, dir.path()).await;
    let api = Api {
        base: node.base.clone(),
        http: reqwest::Client::new(),
    };
    let team = api.setup(&emulator.base_url()).await;

    // 100 incidents × (open, severity change, resolve with a comment), 10 at a time; the
    // node is killed once about half of the 300 changes are in.
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let lanes = (0..10).map(|lane| {
        let api = Api { base: node.base.clone(), http: reqwest::Client::new() };
        let (team, accepted) = (team.clone(), accepted.clone());
        async move {
            let mut ids = Vec::new();
            for i in 0..10 {
                let n = lane * 10 + i;
                let Some(incident) = api
                    .post("/api/v1/incidents", json!({"team_id": team, "title": format!("Burst {n}"), "severity": "critical"}))
                    .await
                else {
                    break;
                };
                let id = incident["id"].as_str().unwrap().to_owned();
                ids.push(id.clone());
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if api.send(reqwest::Method::PATCH, &format!("/api/v1/incidents/{id}"), json!({"severity": "minor"})).await.is_none() {
                    break;
                }
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if api.post(&format!("/api/v1/incidents/{id}/resolve"), json!({"comment": format!("fixed {n}")})).await.is_none() {
                    break;
                }
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            ids
        }
    });
    let killer = async {
        eventually("half the burst accepted", || async {
            accepted.load(std::sync::atomic::Ordering::SeqCst) >= 150
        })
        .await;
        node.signal("-KILL");
    };
    let (ids, ()) = tokio::join!(join_all(lanes), killer);
    let ids: Vec<String> = ids.into_iter().flatten().collect();
    node.wait_exit(Duration::from_secs(5));
    let before_restart = emulator.records("incident").len();
    assert!(
        ids.len() > before_restart
            || ids.iter().any(|id| {
                emulator
                    .records_by_correlation_id("incident", id)
                    .first()
                    .is_none_or(|r| r["state"] != "6")
            }),
        "the kill must leave work undone for this test to mean anything"
    );

    let node = Node::start(crate::SNOWBOUND, dir.path()).await;
    let api = Api {
        base: node.base.clone(),
        http: reqwest::Client::new(),
    };
    for id in &ids {
        let incident = api.get(&format!("/api/v1/incidents/{id}")).await;
        let (state, urgency, notes) = expected(&incident);
        eventually(
            &format!("incident {id} in ServiceNow as Snowbound holds it"),
            || async {
                let records = emulator.records_by_correlation_id("incident", id);
                assert!(
                    records.len() <= 1,
                    "incident {id} has {} records",
                    records.len()
                );
                records.first().is_some_and(|r| {
                    r["state"] == state
                        && r["urgency"] == urgency
                        && (state != "6" || r["close_notes"] == notes)
                })
            },
        )
        .await;
    }
    // An incident whose create committed just before the kill, with its answer lost, is
    // not in `ids` but may rightly be in ServiceNow; what must never happen is a second
    // record for any incident.
    let records = emulator.records("incident");
    let correlation_ids: std::collections::HashSet<_> = records
        .iter()
        .map(|r| r["correlation_id"].clone())
        .collect();
    assert_eq!(
        correlation_ids.len(),
        records.len(),
        "one record per incident"
    );
    assert!(records.len() >= ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_in_flight_call_finish_and_exits_cleanly() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(crate::SNOWBOUND, dir.path()).await;
    let api = Api {
        base: node.base.clone(),
        http: reqwest::Client::new(),
    };
    let team = api.setup(&emulator.base_url()).await;
    emulator.set_latency(Duration::from_millis(1500));
    let incident = api
        .post(
            "/api/v1/incidents",
            json!({"team_id": team, "title": "In flight at shutdown", "severity": "critical"}),
        )
        .await
        .unwrap();
    let id = incident["id"].as_str().unwrap().to_owned();
    eventually("the create is in flight", || async {
        emulator.requests().iter().any(|r| r.method == "POST")
    })
    .await;

    node.signal("-TERM");
    let status = node.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
    let records = emulator.records_by_correlation_id("incident", &id);
    assert_eq!(
        records.len(),
        1,
        "the in-flight create finished before the exit"
    );

    // Recorded too: a restart has nothing left to send for it.
    emulator.set_latency(Duration::ZERO);
    let node = Node::start(crate::SNOWBOUND, dir.path()).await;
    let api = Api {
        base: node.base.clone(),
        http: reqwest::Client::new(),
    };
    let detail = api.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(detail["links"][0]["state"], "synced");
    assert_eq!(detail["links"][0]["sys_id"], records[0]["sys_id"].as_str());
    assert_eq!(
        emulator
            .requests()
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_a_restart_on_sqlite_does_not_wait_for_the_dead_process_leases() {
    // A lease far longer than the test may take: converging means the restart freed
    // the dead process's leases rather than waiting for them to expire.
    const LONG_LEASE: [(&str, &str); 1] = [("SNOWBOUND_LEASE_MS", "600000")];
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start_with(crate::SNOWBOUND, dir.path(), &LONG_LEASE, None).await;
    let api = Api {
        base: node.base.clone(),
        http: reqwest::Client::new(),
    };
    let team = api.setup(&emulator.base_url()).await;
    emulator.set_latency(Duration::from_millis(1_000));
    let mut ids = Vec::new();
    for n in 0..20 {
        let body = json!({"team_id": team, "title": format!("Burst {n}"), "severity": "critical"});
        let incident = api.post("/api/v1/incidents", body).await.unwrap();
        ids.push(incident["id"].as_str().unwrap().to_owned());
    }
    // 20 creates, 8 at a time, 1 s each: the engine is mid-burst, holding leases.
    eventually("a create is in flight", || async {
        emulator.requests().iter().any(|r| r.method == "POST")
    })
    .await;
    node.signal("-KILL");
    drop(node);
    let created = emulator.records("incident").len();
    assert!(created < ids.len(), "the kill must leave work undone");

    emulator.set_latency(Duration::ZERO);
    let node = Node::start_with(crate::SNOWBOUND, dir.path(), &LONG_LEASE, None).await;
    let api = Api {
        base: node.base.clone(),
        http: reqwest::Client::new(),
    };
    for id in &ids {
        // Within `eventually`'s 20 s, against a 600 s lease.
        eventually(
            &format!("incident {id} synced after the restart"),
            || async {
                api.get(&format!("/api/v1/incidents/{id}")).await["links"][0]["state"] == "synced"
            },
        )
        .await;
        assert_eq!(emulator.records_by_correlation_id("incident", id).len(), 1);
    }
    // A create the dead process may have sent is looked up, not repeated.
    assert_eq!(emulator.records("incident").len(), ids.len());
}

/// Sends alerts from 16 lanes (webhook alerts one per request, and Alertmanager bodies
/// of 10) until the node stops answering; returns the incident id of every alert that
/// was answered 2xx.
async fn send_alerts_until_killed(
    base: &str,
    webhook: &str,
    alertmanager: &str,
    accepted: &std::sync::atomic::AtomicUsize,
) -> Vec<String> {
    let lanes = (0..16).map(|lane| async move {
        let http = reqwest::Client::new();
        let mut ids = Vec::new();
        for n in 0.. {
            let key = format!("lane{lane}-alert{n}");
            let answer = if lane % 4 == 0 {
                let alerts: Vec<Value> = (0..10)
                    .map(|i| {
                        json!({"status": "firing", "fingerprint": format!("{key}-{i}"),
                               "labels": {"alertname": format!("{key}-{i}"), "severity": "critical"},
                               "annotations": {"summary": format!("{key} {i}")}})
                    })
                    .collect();
                http.post(format!("{base}{alertmanager}"))
                    .json(&json!({"version": "4", "status": "firing", "alerts": alerts}))
                    .send()
                    .await
            } else {
                http.post(format!("{base}{webhook}"))
                    .json(&json!({"dedup_key": key, "title": key, "severity": "critical"}))
                    .send()
                    .await
            };
            let Ok(answer) = answer else { break };
            if !answer.status().is_success() {
                break;
            }
            let Ok(body) = answer.json::<Value>().await else {
                break;
            };
            let outcomes = match body.get("alerts") {
                Some(alerts) => alerts.as_array().unwrap().clone(),
                None => vec![body],
            };
            for outcome in outcomes {
                ids.push(outcome["incident_id"].as_str().unwrap().to_owned());
                accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        ids
    });
    join_all(lanes).await.into_iter().flatten().collect()
}

/// Group commit answers an alert only once the transaction holding it committed: every
/// alert answered 2xx before a SIGKILL is there after the restart, on both backends.
async fn every_alert_answered_2xx_survives_a_sigkill(database_url: Option<&str>) {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(&str, &str)> = database_url
        .map(|url| vec![("SNOWBOUND_DATABASE_URL", url)])
        .unwrap_or_default();
    let mut node = Node::start_with(crate::SNOWBOUND, dir.path(), &env, None).await;
    let api = Api {
        base: node.base.clone(),
        http: reqwest::Client::new(),
    };
    let team = api.setup(&emulator.base_url()).await;
    let source = |kind: &'static str| {
        let (api, team) = (&api, &team);
        async move {
            let created = api
                .post(
                    "/api/v1/sources",
                    json!({"team_id": team, "type": kind, "name": kind}),
                )
                .await
                .unwrap();
            let url = created["ingest_url"].as_str().unwrap();
            // The path only: the node's public URL may name another host.
            url[url.find("/ingest/").unwrap()..].to_owned()
        }
    };
    let (webhook, alertmanager) = (source("webhook").await, source("alertmanager").await);

    let accepted = std::sync::atomic::AtomicUsize::new(0);
    let killer = async {
        eventually("a few hundred alerts accepted", || async {
            accepted.load(std::sync::atomic::Ordering::SeqCst) >= 300
        })
        .await;
        node.signal("-KILL");
    };
    let (ids, ()) = tokio::join!(
        send_alerts_until_killed(&node.base, &webhook, &alertmanager, &accepted),
        killer
    );
    node.wait_exit(Duration::from_secs(5));
    assert!(ids.len() >= 300);

    let node = Node::start_with(crate::SNOWBOUND, dir.path(), &env, None).await;
    let api = Api {
        base: node.base.clone(),
        http: reqwest::Client::new(),
    };
    for id in &ids {
        let incident = api
            .send(
                reqwest::Method::GET,
                &format!("/api/v1/incidents/{id}"),
                Value::Null,
            )
            .await;
        assert!(
            incident.is_some(),
            "incident {id} was answered 2xx but is gone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_answered_2xx_survives_a_sigkill_on_sqlite() {
    every_alert_answered_2xx_survives_a_sigkill(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_answered_2xx_survives_a_sigkill_on_postgres() {
    let schema = snowbound_store::testing::TestSchema::create().await;
    every_alert_answered_2xx_survives_a_sigkill(Some(schema.url())).await;
}
