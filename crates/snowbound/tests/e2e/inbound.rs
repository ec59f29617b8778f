//! Hearing ServiceNow (issue #15): agents change records in the emulator, its business
//! rule pokes Snowbound (or Snowbound polls), and the incident follows — without
//! anything being sent back. Assertions are on the incident and on the exact requests
//! ServiceNow received.

use std::time::Duration;

use serde_json::{json, Value};
use snowbound_emulator::{BusinessRule, User};
use snowbound_testkit::{eventually, Backend, TestApp};
use uuid::Uuid;

/// An agent's resolve in ServiceNow: Resolved with the close code the data policy asks
/// for and `notes` as close notes.
fn agents_resolve(emulator: &snowbound_emulator::Emulator, sys_id: &str, notes: &str) {
    emulator
        .update_as(
            "agent",
            "incident",
            sys_id,
            json!({"state": "6", "close_code": "Solution provided", "close_notes": notes}),
        )
        .expect("the agent's resolve");
}

struct Desk {
    t: TestApp,
    team: Uuid,
    integration: Uuid,
    source: Uuid,
    ingest_url: String,
}

/// A team with an `always` integration and a servicenow source on it; with `push`, the
/// emulator's business rule posts to the source's ingest URL.
async fn desk(backend: Backend, integration_extra: Value, source: Value, push: bool) -> Desk {
    let t = TestApp::spawn(backend).await;
    let team = t.team("ops").await;
    let integration = t.integration(team, "always", integration_extra).await;
    let mut settings = json!({"integration_id": integration});
    snowbound_testkit::merge(&mut settings, source);
    let answer = t
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "servicenow", "name": "desk", "servicenow": settings}),
        )
        .await;
    let ingest_url = answer["ingest_url"]
        .as_str()
        .expect("ingest_url")
        .to_owned();
    t.emulator
        .upsert_user(User::new("agent", "agent", &["itil"]));
    if push {
        t.emulator
            .add_business_rule(BusinessRule::new("incident", &ingest_url));
    }
    Desk {
        source: snowbound_testkit::id(&answer),
        t,
        team,
        integration,
        ingest_url,
    }
}

impl Desk {
    /// The ingest URL's path, for the test client (which prefixes the node's address).
    fn ingest_path(&self) -> &str {
        let at = self.ingest_url.find("/ingest/").expect("an ingest path");
        &self.ingest_url[at..]
    }

    /// An incident opened in Snowbound and synced: its record's sys_id.
    async fn synced_incident(&self, title: &str) -> (Uuid, String) {
        let incident = self.t.incident(self.team, title, "critical").await;
        self.t.wait_synced(incident).await;
        let sys_id = self.t.record(incident).expect("record")["sys_id"].clone();
        (incident, sys_id)
    }

    fn agent(&self, sys_id: &str, fields: Value) {
        self.t
            .emulator
            .update_as("agent", "incident", sys_id, fields)
            .expect("the agent's edit");
    }

    async fn incident(&self, id: Uuid) -> Value {
        self.t.get(&format!("/api/v1/incidents/{id}")).await
    }

    async fn wait_status(&self, id: Uuid, status: &str) -> Value {
        eventually(&format!("incident {id} {status}"), || async move {
            self.incident(id).await["status"] == status
        })
        .await;
        self.incident(id).await
    }

    /// The business rule has posted at least `n` times for the record.
    async fn delivered(&self, sys_id: &str, n: usize) {
        eventually(&format!("{n} business-rule posts for {sys_id}"), || async {
            self.t
                .emulator
                .business_rule_deliveries()
                .iter()
                .filter(|x| x.sys_id == sys_id)
                .count()
                >= n
        })
        .await;
    }

    /// Every poke taken in has been read.
    async fn pokes_read(&self) {
        eventually("every poke read", || async {
            self.t.store().count_pokes(self.source).await.unwrap() == 0
        })
        .await;
    }

    /// The Table API writes (not reads) ServiceNow received for the record.
    fn writes_to(&self, sys_id: &str) -> usize {
        self.t
            .emulator
            .requests()
            .iter()
            .filter(|r| r.method != "GET" && r.path.ends_with(sys_id))
            .count()
    }

    fn reads_of(&self, sys_id: &str) -> usize {
        self.t
            .emulator
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && (r.path.ends_with(sys_id) || r.query.contains(sys_id)))
            .count()
    }
}

fn timeline_has(incident: &Value, kind: &str, actor_part: &str) -> bool {
    incident["timeline"].as_array().is_some_and(|entries| {
        entries.iter().any(|e| {
            e["kind"] == kind && e["actor"].as_str().is_some_and(|a| a.contains(actor_part))
        })
    })
}

async fn an_agents_resolve_reaches_snowbound_by_push_and_is_never_sent_back(backend: Backend) {
    let d = desk(backend, json!({}), json!({"delivery": "push"}), true).await;
    let (incident, sys_id) = d.synced_incident("Disk full").await;
    let writes_before = d.writes_to(&sys_id);

    agents_resolve(&d.t.emulator, &sys_id, "replaced the disk");
    let resolved = d.wait_status(incident, "resolved").await;
    assert_eq!(resolved["resolve_comment"], "replaced the disk");
    let number = d.t.record(incident).unwrap()["number"].clone();
    assert!(
        timeline_has(
            &resolved,
            "resolved",
            &format!("agent in ServiceNow {number}")
        ),
        "{resolved}"
    );
    d.pokes_read().await;
    d.t.wait_synced(incident).await;
    assert_eq!(
        d.writes_to(&sys_id),
        writes_before,
        "the agent's change is never sent back"
    );
    let record = d.t.record(incident).unwrap();
    assert_eq!(record["close_notes"], "replaced the disk");

    // Reopened in ServiceNow: the incident reopens, and still nothing is sent back.
    d.agent(&sys_id, json!({"state": "2"}));
    d.wait_status(incident, "open").await;
    d.pokes_read().await;
    d.t.wait_synced(incident).await;
    assert_eq!(d.writes_to(&sys_id), writes_before);
}

async fn acknowledge_and_urgency_reach_snowbound_when_their_transitions_are_on(backend: Backend) {
    let d = desk(
        backend,
        json!({"state_acknowledged": "2"}),
        json!({"delivery": "push", "transitions": {"severity": true}}),
        true,
    )
    .await;
    let (incident, sys_id) = d.synced_incident("Latency").await;
    let writes_before = d.writes_to(&sys_id);
    d.agent(&sys_id, json!({"state": "2"}));
    d.wait_status(incident, "acknowledged").await;
    // Urgency 3 is minor in the default severity map.
    d.agent(&sys_id, json!({"urgency": "3"}));
    eventually("severity follows urgency", || async {
        d.incident(incident).await["severity"] == "minor"
    })
    .await;
    d.pokes_read().await;
    d.t.wait_synced(incident).await;
    assert_eq!(d.writes_to(&sys_id), writes_before);
}

async fn polling_alone_catches_acknowledge_urgency_resolve_and_reopen(backend: Backend) {
    let d = desk(
        backend,
        json!({"state_acknowledged": "2"}),
        json!({"delivery": "poll", "poll_interval_s": 5, "transitions": {"severity": true}}),
        false,
    )
    .await;
    let (incident, sys_id) = d.synced_incident("CPU").await;
    let writes_before = d.writes_to(&sys_id);
    d.agent(&sys_id, json!({"state": "2"}));
    d.wait_status(incident, "acknowledged").await;
    d.agent(&sys_id, json!({"urgency": "3"}));
    eventually("severity follows urgency", || async {
        d.incident(incident).await["severity"] == "minor"
    })
    .await;
    agents_resolve(&d.t.emulator, &sys_id, "fixed by the desk");
    let resolved = d.wait_status(incident, "resolved").await;
    assert_eq!(resolved["resolve_comment"], "fixed by the desk");
    d.agent(&sys_id, json!({"state": "1"}));
    d.wait_status(incident, "open").await;
    d.t.wait_synced(incident).await;
    assert_eq!(
        d.writes_to(&sys_id),
        writes_before,
        "nothing heard by polling is sent back"
    );
    // A poke to a poll-only source is refused.
    let answer =
        d.t.try_post(
            d.ingest_path(),
            json!({"sys_id": sys_id, "table": "incident"}),
        )
        .await;
    assert_eq!(answer.status_code(), 409, "{:?}", answer.code());
}

async fn snowbounds_own_resolve_poked_back_costs_no_further_patch(backend: Backend) {
    let d = desk(backend, json!({}), json!({"delivery": "push"}), true).await;
    let (incident, sys_id) = d.synced_incident("Memory").await;
    d.t.post(
        &format!("/api/v1/incidents/{incident}/resolve"),
        json!({"comment": "fixed"}),
    )
    .await;
    d.t.wait_synced(incident).await;
    let writes = d.writes_to(&sys_id);
    // The business rule fired for Snowbound's own create and resolve; both pokes read.
    d.delivered(&sys_id, 2).await;
    d.pokes_read().await;
    d.t.wait_synced(incident).await;
    assert_eq!(d.writes_to(&sys_id), writes, "the echo cost no PATCH");
    assert_eq!(d.incident(incident).await["status"], "resolved");
}

async fn a_forged_poke_carrying_values_changes_nothing(backend: Backend) {
    let d = desk(backend, json!({}), json!({"delivery": "push"}), false).await;
    let (incident, sys_id) = d.synced_incident("Forged").await;
    let answer =
        d.t.try_post(
            d.ingest_path(),
            json!({"sys_id": sys_id, "table": "incident", "state": "6", "close_notes": "forged"}),
        )
        .await;
    assert_eq!(answer.status_code(), 202);
    d.pokes_read().await;
    // The record was read, and it says open.
    assert!(d.reads_of(&sys_id) >= 1);
    assert_eq!(d.incident(incident).await["status"], "open");
    // A wrong secret is not found.
    let wrong =
        d.t.try_post(
            "/ingest/not-a-secret",
            json!({"sys_id": sys_id, "table": "incident"}),
        )
        .await;
    assert_eq!(wrong.status_code(), 404);
}

async fn a_poke_storm_costs_about_one_read_per_record(backend: Backend) {
    let d = desk(backend, json!({}), json!({"delivery": "push"}), false).await;
    let mut records = Vec::new();
    for i in 0..10 {
        records.push(d.synced_incident(&format!("storm {i}")).await);
    }
    let reads_before: usize = records.iter().map(|(_, s)| d.reads_of(s)).sum();
    let client = reqwest::Client::new();
    let url = format!("{}{}", d.t.base, d.ingest_path());
    let pokes = (0..1000).map(|i| {
        let (_, sys_id) = &records[i % records.len()];
        client
            .post(&url)
            .json(&json!({"sys_id": sys_id, "table": "incident"}))
            .send()
    });
    for answer in futures::future::join_all(pokes).await {
        assert_eq!(answer.expect("poke answered").status(), 202);
    }
    d.pokes_read().await;
    let reads: usize = records.iter().map(|(_, s)| d.reads_of(s)).sum::<usize>() - reads_before;
    assert!(
        // A poke arriving during its record's read makes it read again (the read may
        // predate the change), so a storm still going costs a few reads per record.
        (10..=50).contains(&reads),
        "1,000 pokes for 10 records cost {reads} reads"
    );
}

async fn a_servicenow_born_incident_under_the_filter_opens_one_incident_on_the_record(
    backend: Backend,
) {
    let d = desk(
        backend,
        json!({}),
        json!({"delivery": "push", "open_filter": "category=network"}),
        true,
    )
    .await;
    let inside = d
        .t
        .emulator
        .create_as(
            "agent",
            "incident",
            json!({"short_description": "Switch down in rack 4", "category": "network", "urgency": "1"}),
        )
        .expect("agent opens a record");
    let outside =
        d.t.emulator
            .create_as(
                "agent",
                "incident",
                json!({"short_description": "Printer jam", "category": "hardware"}),
            )
            .expect("agent opens another");
    d.delivered(&inside["sys_id"], 1).await;
    d.delivered(&outside["sys_id"], 1).await;
    d.pokes_read().await;
    let incidents =
        d.t.get(&format!("/api/v1/incidents?team_id={}", d.team))
            .await;
    let list = incidents.as_array().expect("a list of incidents");
    assert_eq!(list.len(), 1, "{incidents}");
    let born = &list[0];
    assert_eq!(born["title"], "Switch down in rack 4");
    assert_eq!(born["severity"], "critical");
    assert_eq!(born["attributes"]["servicenow.number"], inside["number"]);
    assert_eq!(born["attributes"]["servicenow.sys_id"], inside["sys_id"]);
    let id: Uuid = born["id"].as_str().unwrap().parse().unwrap();
    d.t.wait_synced(id).await;
    // Outbound adopted the record: no second record, nothing written to it.
    assert_eq!(d.t.emulator.records("incident").len(), 2);
    assert_eq!(d.writes_to(&inside["sys_id"]), 0);
    assert!(d.reads_of(&outside["sys_id"]) >= 1);

    // The agent resolves it: the born incident follows.
    agents_resolve(&d.t.emulator, &inside["sys_id"], "rebooted");
    d.wait_status(id, "resolved").await;
    // Resolved in Snowbound then reopened there: outbound updates the adopted record.
    d.t.post(&format!("/api/v1/incidents/{id}/reopen"), json!({}))
        .await;
    d.t.wait_synced(id).await;
    assert_eq!(
        d.t.emulator.record("incident", &inside["sys_id"]).unwrap()["state"],
        "1"
    );
    assert_eq!(d.t.emulator.records("incident").len(), 2);
}

async fn who_wins_decides_a_conflict_as_it_says(backend: Backend) {
    // Snowbound wins: the agent's resolve is undone by a re-assertion, and said so.
    let d = desk(
        backend,
        json!({"who_wins": {"state": "snowbound"}}),
        json!({"delivery": "push"}),
        true,
    )
    .await;
    let (incident, sys_id) = d.synced_incident("Contested").await;
    agents_resolve(&d.t.emulator, &sys_id, "not ours to close");
    eventually("Snowbound re-asserts open", || async {
        d.t.emulator.record("incident", &sys_id).unwrap()["state"] == "1"
    })
    .await;
    assert_eq!(d.incident(incident).await["status"], "open");
    let links = d.t.store().links_of_incident(incident).await.unwrap();
    assert_eq!(links.len(), 1);
    let link = d.t.get(&format!("/api/v1/incidents/{incident}")).await;
    assert!(
        link.to_string().contains("reasserted"),
        "the link says it re-asserted: {link}"
    );

    // ServiceNow wins: the resolve is taken, and nothing is pushed back.
    d.t.patch(
        &format!("/api/v1/integrations/{}", d.integration),
        json!({"servicenow": {"who_wins": {"state": "servicenow"}}}),
    )
    .await;
    d.pokes_read().await;
    d.t.wait_synced(incident).await;
    let writes = d.writes_to(&sys_id);
    agents_resolve(&d.t.emulator, &sys_id, "the desk decides");
    d.wait_status(incident, "resolved").await;
    d.pokes_read().await;
    d.t.wait_synced(incident).await;
    assert_eq!(d.writes_to(&sys_id), writes);
}

/// `latest` when both changed since the last push: Snowbound's later acknowledge (not
/// sent yet: ServiceNow fails the PATCH) wins over the agent's earlier resolve, which
/// Snowbound hears only afterwards; the link says so and Snowbound's state goes out.
async fn latest_lets_snowbounds_later_unsent_change_win_a_conflict(backend: Backend) {
    let d = desk(
        backend,
        json!({"state_acknowledged": "2"}),
        json!({"delivery": "push"}),
        false,
    )
    .await;
    let (incident, sys_id) = d.synced_incident("Both changed").await;
    agents_resolve(&d.t.emulator, &sys_id, "desk closed it");
    let agent_second = chrono::Utc::now().timestamp();
    // sys_updated_on has whole seconds: Snowbound's change must fall in a later one.
    eventually("the next second", || async {
        chrono::Utc::now().timestamp() > agent_second
    })
    .await;
    d.t.emulator.add_fault(
        snowbound_emulator::Fault::status("PATCH", "/api/now/table/incident", 503).always(),
    );
    d.t.post(
        &format!("/api/v1/incidents/{incident}/acknowledge"),
        json!({}),
    )
    .await;
    eventually("the acknowledge's PATCH refused", || async {
        d.t.store().links_of_incident(incident).await.unwrap()[0].state
            == snowbound_store::LinkState::Retrying
    })
    .await;
    // Now Snowbound hears the agent's earlier resolve.
    let poke =
        d.t.try_post(
            d.ingest_path(),
            json!({"sys_id": sys_id, "table": "incident"}),
        )
        .await;
    assert_eq!(poke.status_code(), 202);
    d.pokes_read().await;
    let heard = d.incident(incident).await;
    assert_eq!(heard["status"], "acknowledged", "{heard}");
    assert_eq!(
        heard["links"][0]["notes"][0]["kind"], "reasserted",
        "{heard}"
    );
    d.t.emulator.clear_faults();
    eventually("Snowbound's state reaches the record", || async {
        d.t.emulator.record("incident", &sys_id).unwrap()["state"] == "2"
    })
    .await;
}

async fn a_record_deleted_in_servicenow_parks_the_link_and_keeps_the_incident(backend: Backend) {
    let d = desk(backend, json!({}), json!({"delivery": "push"}), false).await;
    let (incident, sys_id) = d.synced_incident("Deleted").await;
    let deleted = reqwest::Client::new()
        .delete(format!(
            "{}/api/now/table/incident/{sys_id}",
            d.t.emulator.base_url()
        ))
        .basic_auth("admin", Some("admin"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let poke =
        d.t.try_post(
            d.ingest_path(),
            json!({"sys_id": sys_id, "table": "incident"}),
        )
        .await;
    assert_eq!(poke.status_code(), 202);
    d.pokes_read().await;
    let links = d.t.store().links_of_incident(incident).await.unwrap();
    assert_eq!(links[0].state, snowbound_store::LinkState::Parked);
    assert_eq!(
        links[0].last_error.as_deref(),
        Some("deleted in ServiceNow")
    );
    assert_eq!(d.incident(incident).await["status"], "open");
}

snowbound_testkit::on_both_backends!(
    an_agents_resolve_reaches_snowbound_by_push_and_is_never_sent_back,
    acknowledge_and_urgency_reach_snowbound_when_their_transitions_are_on,
    polling_alone_catches_acknowledge_urgency_resolve_and_reopen,
    snowbounds_own_resolve_poked_back_costs_no_further_patch,
    a_forged_poke_carrying_values_changes_nothing,
    a_poke_storm_costs_about_one_read_per_record,
    a_servicenow_born_incident_under_the_filter_opens_one_incident_on_the_record,
    who_wins_decides_a_conflict_as_it_says,
    latest_lets_snowbounds_later_unsent_change_win_a_conflict,
    a_record_deleted_in_servicenow_parks_the_link_and_keeps_the_incident,
);

/// Agents resolve a dozen records while the node is killed (`SIGKILL`) and down: the
/// business rule's posts to it are lost, and the restarted node's polling catches up
/// every one of them, each applied exactly once, none sent back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_while_agents_resolve_catches_up_every_record_exactly_once() {
    use snowbound_emulator::{Emulator, EmulatorConfig};
    use snowbound_testkit::{node::Node, Api};

    const RECORDS: usize = 12;
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    emulator.upsert_user(User::new("agent", "agent", &["itil"]));
    let dir = tempfile::tempdir().unwrap();
    let mut node = Node::start(crate::SNOWBOUND, dir.path()).await;
    let api = Api::new(node.base.clone());
    let team = api.team("desk").await;
    let integration = api
        .post(
            "/api/v1/integrations",
            json!({"display_name": "SN", "root_team_id": team, "type": "servicenow", "forwarding": "always",
                   "servicenow": {"instance_url": emulator.base_url(), "username": "admin", "password": "admin",
                                  "close_code": "Solution provided"}}),
        )
        .await;
    let source = api
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "servicenow", "name": "desk",
                   "servicenow": {"integration_id": integration["id"], "poll_interval_s": 5}}),
        )
        .await;
    let ingest = source["ingest_url"].as_str().unwrap();
    let path = &ingest[ingest.find("/ingest/").unwrap()..];
    emulator.add_business_rule(BusinessRule::new(
        "incident",
        &format!("{}{path}", node.base),
    ));
    let mut records = Vec::new();
    for i in 0..RECORDS {
        let id = api.incident(team, &format!("Record {i}"), "critical").await;
        records.push(id);
    }
    let sys_ids: Vec<String> = {
        let mut sys_ids = Vec::new();
        for id in &records {
            let id = id.to_string();
            // Created and recorded: the agents work on records Snowbound knows (a create
            // whose answer the kill loses is looked up and re-sent whole, the limit the
            // closing note of this stop describes).
            eventually("the record is created and recorded", || async {
                api.get(&format!("/api/v1/incidents/{id}")).await["links"][0]["state"] == "synced"
            })
            .await;
            sys_ids.push(emulator.records_by_correlation_id("incident", &id)[0]["sys_id"].clone());
        }
        sys_ids
    };
    // Half are resolved right before the kill (their pokes may be queued, in flight or
    // lost), half while the node is down.
    for sys_id in &sys_ids[..RECORDS / 2] {
        agents_resolve(&emulator, sys_id, "desk fixed it");
    }
    node.signal("-KILL");
    node.wait_exit(Duration::from_secs(10));
    for sys_id in &sys_ids[RECORDS / 2..] {
        agents_resolve(&emulator, sys_id, "desk fixed it");
    }
    let writes_before = emulator
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .count();

    let restarted_at = chrono::Utc::now();
    let log = dir.path().join("restarted.log");
    let node = Node::start_with(
        crate::SNOWBOUND,
        dir.path(),
        &[("RUST_LOG", "warn,snowbound_engine::inbound=debug")],
        Some(&log),
    )
    .await;
    let api = Api::new(node.base.clone());
    // Two poll intervals and then some, on a loaded machine; a failure says what the
    // source's polls saw.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let source_path = format!("/api/v1/sources/{}", source["id"].as_str().unwrap());
    for id in &records {
        loop {
            let incident = api.get(&format!("/api/v1/incidents/{id}")).await;
            if incident["status"] == "resolved" {
                break;
            }
            if std::time::Instant::now() > deadline {
                let source = api.get(&source_path).await;
                let record = incident["links"][0]["sys_id"].as_str().unwrap_or_default();
                let heard: Vec<String> = std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| {
                        l.contains(record)
                            || l.contains("WARN")
                            || l.contains(id.to_string().as_str())
                    })
                    .map(str::to_owned)
                    .collect();
                panic!(
                    "incident {id} not resolved after the restart: {incident}\nsource: {source}\n\
                     record now: {:?}\nheard: {heard:#?}\nrestarted at {restarted_at}, requests: {:#?}",
                    emulator.record("incident", record),
                    emulator
                        .requests()
                        .iter()
                        .filter(|r| r.path.contains(record) || r.query.contains(record) || r.body.to_string().contains(id.to_string().as_str()) || r.query.contains(id.to_string().as_str()))
                        .map(|r| (r.received_at, r.method.clone(), r.query.clone(), r.body.to_string()))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for id in &records {
        let incident = api.get(&format!("/api/v1/incidents/{id}")).await;
        let resolves = incident["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "resolved")
            .count();
        assert_eq!(resolves, 1, "applied exactly once: {incident}");
        assert_eq!(incident["resolve_comment"], "desk fixed it");
    }
    let agent_writes = emulator
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .count();
    assert_eq!(
        agent_writes, writes_before,
        "nothing sent back to ServiceNow"
    );
}

#[tokio::test]
async fn an_integration_a_servicenow_source_reads_through_cannot_be_deleted() {
    let d = desk(
        Backend::Sqlite,
        json!({}),
        json!({"delivery": "push"}),
        false,
    )
    .await;
    let refused =
        d.t.try_delete(&format!("/api/v1/integrations/{}", d.integration))
            .await;
    assert_eq!(refused.status_code(), 409);
    assert_eq!(refused.code(), "integration_in_use");
    let gone =
        d.t.try_delete(&format!("/api/v1/sources/{}", d.source))
            .await;
    assert!(gone.is_success(), "{:?}", gone.code());
    let deleted =
        d.t.try_delete(&format!("/api/v1/integrations/{}", d.integration))
            .await;
    assert!(deleted.is_success(), "{:?}", deleted.code());
}
