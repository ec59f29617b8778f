//! Several `snowbound serve` processes share one PostgreSQL database. A few hundred
//! incident changes arrive spread over all three APIs; one node is SIGKILLed while it
//! holds leases mid-burst. Every incident must still end up as exactly one ServiceNow
//! record holding its final state, written in order, and the dead node's leases must
//! have been finished by the survivors. With a slow instance and the tightest lease the
//! lease rule allows, no incident gets two records (leases are fenced before each call);
//! with the default lease, a dead node's links are taken over in seconds.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use serde_json::{json, Value};
use snowbound_emulator::{Emulator, EmulatorConfig, ReceivedRequest};
use snowbound_store::testing::TestSchema;
use sqlx::postgres::PgPoolOptions;
use sqlx::Row;
use tokio::sync::RwLock;

const ADMIN_TOKEN: &str = "multi-node-admin-token";
/// One key for every node: the secrets one seals, the others must open.
const SECRET_KEY: &str = "6b6579206f6620746865206d756c74692d6e6f646520746573742c2033322062";
const INCIDENTS: usize = 75;
/// Per incident: open critical, to warning, to minor, resolve with a comment.
const CHANGES: usize = 4;
const VICTIM: usize = 2;

/// The node processes; killed when the test ends, however it ends.
struct Nodes {
    children: Vec<Child>,
    urls: Vec<String>,
    logs: tempfile::TempDir,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Nodes {
    /// `env` adds to (or overrides) the settings every node gets.
    fn start(count: usize, database_url: &str, env: &[(&str, &str)]) -> Nodes {
        let logs = tempfile::tempdir().unwrap();
        let mut children = Vec::new();
        let mut urls = Vec::new();
        for i in 0..count {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let data_dir = logs.path().join(format!("data-{i}"));
            let log = File::create(logs.path().join(format!("node-{i}.log"))).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_snowbound"))
                .arg("serve")
                .env("SNOWBOUND_LISTEN", format!("127.0.0.1:{port}"))
                .env("SNOWBOUND_DATA_DIR", &data_dir)
                .env("SNOWBOUND_DATABASE_URL", database_url)
                .env("SNOWBOUND_SECRET_KEY", SECRET_KEY)
                .env("SNOWBOUND_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("SNOWBOUND_NODE_ID", format!("node-{i}"))
                .env("SNOWBOUND_ALLOW_LOCAL_INSTANCES", "true")
                .env("SNOWBOUND_RETRY_BASE_MS", "20")
                .env("SNOWBOUND_RETRY_MAX_MS", "200")
                .env("RUST_LOG", "warn")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("the snowbound binary starts");
            children.push(child);
            urls.push(format!("http://127.0.0.1:{port}"));
        }
        Nodes {
            children,
            urls,
            logs,
        }
    }

    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.logs.path().join(format!("node-{i}.log"))).unwrap_or_default()
    }

    async fn wait_healthy(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for (i, url) in self.urls.clone().iter().enumerate() {
            loop {
                let ok = http
                    .get(format!("{url}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    break;
                }
                if let Ok(Some(status)) = self.children[i].try_wait() {
                    panic!("node {i} exited with {status}:\n{}", self.log(i));
                }
                assert!(
                    Instant::now() < deadline,
                    "node {i} not healthy:\n{}",
                    self.log(i)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn post(http: &reqwest::Client, url: &str, path: &str, body: Value) -> Value {
    send(http, reqwest::Method::POST, url, path, body).await
}

async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    path: &str,
    body: Value,
) -> Value {
    let response = http
        .request(method, format!("{url}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}{path}: {e}"));
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    assert!(
        status.is_success(),
        "{url}{path} answered {status}: {answer}"
    );
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_the_work_and_survive_one_being_killed() {
    let schema = TestSchema::create().await;
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    // Slow enough that every node has reconciles in flight when the victim dies.
    emulator.set_latency(Duration::from_millis(40));
    let http = reqwest::Client::new();
    // All three start at once: the migrator's advisory lock lets one migrate.
    // The shortest lease the lease rule allows for this timeout.
    let env = [
        ("SNOWBOUND_LEASE_MS", "2400"),
        ("SNOWBOUND_SERVICENOW_TIMEOUT_MS", "800"),
    ];
    let mut nodes = Nodes::start(3, schema.url(), &env);
    nodes.wait_healthy(&http).await;
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect(schema.url())
        .await
        .unwrap();

    let first = nodes.urls[0].clone();
    let team = post(&http, &first, "/api/v1/teams", json!({"name": "core"})).await;
    post(
        &http,
        &first,
        "/api/v1/integrations",
        json!({"display_name": "SN", "root_team_id": team["id"], "type": "servicenow", "forwarding": "always",
               "servicenow": {"instance_url": emulator.base_url(), "username": "admin", "password": "admin",
                              "close_code": "Solution provided"}}),
    )
    .await;

    // Requests to the victim hold this lock shared; the kill takes it exclusively, so no
    // request is half-way into the victim when it dies (an answer lost with the node
    // would leave the test unsure whether the change happened) — its engine, though,
    // dies mid-reconcile. After the kill, its share of the requests goes elsewhere.
    let victim_dead = Arc::new(RwLock::new(false));
    let urls = Arc::new(nodes.urls.clone());
    let burst = futures::stream::iter(0..INCIDENTS)
        .map(|i| {
            let (http, urls, team) = (http.clone(), Arc::clone(&urls), team["id"].clone());
            let victim_dead = Arc::clone(&victim_dead);
            async move {
                let node_for = |change: usize| (i + change) % urls.len();
                let mut id = String::new();
                for change in 0..CHANGES {
                    let dead = victim_dead.read().await;
                    let mut node = node_for(change);
                    if node == VICTIM && *dead {
                        node = (node + 1) % urls.len();
                    }
                    let url = &urls[node];
                    let path = format!("/api/v1/incidents/{id}");
                    match change {
                        0 => {
                            let body = json!({"team_id": team, "title": format!("Burst {i}"), "severity": "critical"});
                            id = post(&http, url, "/api/v1/incidents", body).await["id"]
                                .as_str()
                                .unwrap()
                                .to_owned();
                        }
                        1 | 2 => {
                            let severity = if change == 1 { "warning" } else { "minor" };
                            let body = json!({ "severity": severity });
                            send(&http, reqwest::Method::PATCH, url, &path, body).await;
                        }
                        _ => {
                            let body = json!({"comment": format!("fixed {i}")});
                            post(&http, url, &format!("{path}/resolve"), body).await;
                        }
                    }
                    drop(dead);
                }
                id
            }
        })
        .buffered(12);
    let killer = async {
        // Mid-burst: the first moment the victim holds leases.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut dead = victim_dead.write().await;
            let held = leases_of(&db, VICTIM).await;
            if !held.is_empty() || Instant::now() > deadline {
                nodes.children[VICTIM].kill().unwrap();
                nodes.children[VICTIM].wait().unwrap();
                *dead = true;
                return (held, Utc::now().timestamp_millis());
            }
            drop(dead);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (incidents, (orphaned, killed_at)) = tokio::join!(burst.collect::<Vec<String>>(), killer);
    assert!(
        !orphaned.is_empty(),
        "the victim must die holding leases for this test to mean anything"
    );

    // Every incident's final state reaches ServiceNow.
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let done = incidents.iter().enumerate().all(|(i, id)| {
            emulator
                .records_by_correlation_id("incident", id)
                .first()
                .is_some_and(|r| {
                    r["state"] == "6"
                        && r["urgency"] == "3"
                        && r["close_notes"] == format!("fixed {i}")
                })
        });
        let unsynced: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM links WHERE state <> 'synced' OR synced_rev <> rev",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if done && unsynced == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not all changes reached ServiceNow ({unsynced} links unsynced); node 0 log:\n{}",
            nodes.log(0)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let requests = emulator.requests();
    for (i, id) in incidents.iter().enumerate() {
        let records = emulator.records_by_correlation_id("incident", id);
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
                record["close_code"].as_str(),
                record["close_notes"].as_str()
            ),
            ("6", "3", "Solution provided", format!("fixed {i}").as_str()),
            "incident {i}"
        );
        assert_in_order(i, &writes_for(&requests, id, &record["sys_id"]));
    }
    assert_eq!(emulator.records("incident").len(), INCIDENTS);

    // The victim's leases were finished by the survivors after it died: nobody holds
    // them now and they were synced after the kill.
    for (incident_id, integration_id) in &orphaned {
        let row = sqlx::query(
            "SELECT lease_owner, last_synced_at FROM links WHERE incident_id = $1 AND integration_id = $2",
        )
        .bind(incident_id)
        .bind(integration_id)
        .fetch_one(&db)
        .await
        .unwrap();
        let owner: Option<String> = row.get("lease_owner");
        let synced_at: Option<i64> = row.get("last_synced_at");
        assert_eq!(owner, None, "link of {incident_id} still leased");
        assert!(
            synced_at.is_some_and(|t| t > killed_at),
            "the dead node's link of {incident_id} was not finished by a survivor"
        );
    }
    assert!(
        !nodes.log(0).contains("panicked") && !nodes.log(1).contains("panicked"),
        "a node panicked:\n{}\n{}",
        nodes.log(0),
        nodes.log(1)
    );
    // The API call log is one log: calls of every node, the victim's included.
    let calls: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_calls")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(calls >= INCIDENTS as i64, "only {calls} API calls logged");
    db.close().await;
    drop(nodes);
    drop(schema);
}

/// Links the node holds a live lease on: (incident_id, integration_id).
async fn leases_of(db: &sqlx::PgPool, node: usize) -> Vec<(String, String)> {
    sqlx::query(
        "SELECT incident_id, integration_id FROM links WHERE lease_owner LIKE $1 AND lease_until > $2",
    )
    .bind(format!("node-{node}:%"))
    .bind(Utc::now().timestamp_millis())
    .fetch_all(db)
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get("incident_id"), row.get("integration_id")))
    .collect()
}

/// The Table API writes ServiceNow applied to one record, in the order it applied them.
fn writes_for<'a>(
    requests: &'a [ReceivedRequest],
    incident: &str,
    sys_id: &str,
) -> Vec<&'a ReceivedRequest> {
    requests
        .iter()
        .filter(|r| r.method == "POST" || r.method == "PATCH")
        .filter(|r| r.status.is_some_and(|s| s < 300))
        .filter(|r| {
            r.path.ends_with(sys_id)
                || r.body.get("correlation_id").and_then(Value::as_str) == Some(incident)
        })
        .collect()
}

/// Severity only ever went down (urgency 1 → 2 → 3) and nothing was written after the
/// resolve that took the state anywhere but Resolved: no write overtook a later one.
fn assert_in_order(i: usize, writes: &[&ReceivedRequest]) {
    let fields: Vec<BTreeMap<String, String>> = writes
        .iter()
        .map(|w| {
            w.body
                .as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    assert!(!fields.is_empty(), "incident {i}: no writes");
    let creates = writes.iter().filter(|w| w.method == "POST").count();
    assert_eq!(creates, 1, "incident {i}: {creates} creates");
    let urgencies: Vec<u8> = fields
        .iter()
        .filter_map(|f| f.get("urgency")?.parse().ok())
        .collect();
    assert!(
        urgencies.windows(2).all(|w| w[0] <= w[1]),
        "incident {i}: urgency went back: {urgencies:?}"
    );
    let states: Vec<&str> = fields
        .iter()
        .filter_map(|f| f.get("state").map(String::as_str))
        .collect();
    if let Some(resolved) = states.iter().position(|s| *s == "6") {
        assert!(
            states[resolved..].iter().all(|s| *s == "6"),
            "incident {i}: state left Resolved: {states:?}"
        );
    }
    assert_eq!(states.last(), Some(&"6"), "incident {i}: {states:?}");
}

async fn setup_integration(http: &reqwest::Client, url: &str, instance: &str) -> Value {
    let team = post(http, url, "/api/v1/teams", json!({"name": "core"})).await;
    post(
        http,
        url,
        "/api/v1/integrations",
        json!({"display_name": "SN", "root_team_id": team["id"], "type": "servicenow", "forwarding": "always",
               "servicenow": {"instance_url": instance, "username": "admin", "password": "admin",
                              "close_code": "Solution provided"}}),
    )
    .await;
    team["id"].clone()
}

/// Opens `count` incidents at once, spread over `urls`; their ids.
async fn open_at_once(
    http: &reqwest::Client,
    urls: &[String],
    team: &Value,
    count: usize,
) -> Vec<String> {
    let opens = (0..count).map(|i| {
        let url = &urls[i % urls.len()];
        let body =
            json!({"team_id": team, "title": format!("At once {i}"), "severity": "critical"});
        async move {
            post(http, url, "/api/v1/incidents", body).await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    });
    futures::future::join_all(opens).await
}

/// Waits until every incident's link is synced (asked over `url`'s API), then checks
/// ServiceNow holds exactly one record per incident and no other.
async fn assert_one_record_each(
    http: &reqwest::Client,
    url: &str,
    emulator: &Emulator,
    incidents: &[String],
    within: Duration,
    nodes: &Nodes,
) {
    let deadline = Instant::now() + within;
    for id in incidents {
        loop {
            let detail = send(
                http,
                reqwest::Method::GET,
                url,
                &format!("/api/v1/incidents/{id}"),
                Value::Null,
            )
            .await;
            if detail["links"][0]["state"] == "synced" {
                break;
            }
            if Instant::now() > deadline {
                let doubled = incidents
                    .iter()
                    .filter(|id| emulator.records_by_correlation_id("incident", id).len() > 1)
                    .count();
                panic!(
                    "incident {id} not synced within {within:?} ({doubled} incidents have more \
                     than one record so far): {}; node 0 log:\n{}",
                    detail["links"][0],
                    nodes.log(0)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let doubled: Vec<(usize, &String)> = incidents
        .iter()
        .map(|id| (emulator.records_by_correlation_id("incident", id).len(), id))
        .filter(|(records, _)| *records != 1)
        .collect();
    assert!(
        doubled.is_empty(),
        "{} of {} incidents do not have exactly one record: {doubled:?}",
        doubled.len(),
        incidents.len()
    );
    assert_eq!(emulator.records("incident").len(), incidents.len());
}

/// An instance answering in 2.5 s, calls cut at 3 s, and the shortest lease the lease
/// rule allows for that timeout.
const SLOW_INSTANCE: Duration = Duration::from_millis(2_500);
const TIGHT: [(&str, &str); 2] = [
    ("SNOWBOUND_SERVICENOW_TIMEOUT_MS", "3000"),
    ("SNOWBOUND_LEASE_MS", "5334"),
];
const AT_ONCE: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_and_a_slow_instance_create_each_record_once() {
    let schema = TestSchema::create().await;
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let http = reqwest::Client::new();
    let mut nodes = Nodes::start(2, schema.url(), &TIGHT);
    nodes.wait_healthy(&http).await;
    let team = setup_integration(&http, &nodes.urls[0], &emulator.base_url()).await;
    emulator.set_latency(SLOW_INSTANCE);

    let incidents = open_at_once(&http, &nodes.urls, &team, AT_ONCE).await;
    // 64 creates at 2 × 8 calls of 2.5 s take about 10 s.
    assert_one_record_each(
        &http,
        &nodes.urls[0],
        &emulator,
        &incidents,
        Duration::from_secs(120),
        &nodes,
    )
    .await;
    drop(nodes);
    drop(schema);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_with_more_links_than_call_slots_creates_each_record_once() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("one.db").display());
    let mut nodes = Nodes::start(1, &database, &TIGHT);
    nodes.wait_healthy(&http).await;
    let team = setup_integration(&http, &nodes.urls[0], &emulator.base_url()).await;
    emulator.set_latency(SLOW_INSTANCE);

    // 64 links, 8 call slots: most wait far longer than a lease for their turn.
    let incidents = open_at_once(&http, &nodes.urls, &team, AT_ONCE).await;
    assert_one_record_each(
        &http,
        &nodes.urls[0],
        &emulator,
        &incidents,
        Duration::from_secs(120),
        &nodes,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_lease_a_dead_nodes_links_are_taken_over_in_seconds() {
    let schema = TestSchema::create().await;
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let http = reqwest::Client::new();
    // No lease or timeout settings: the defaults.
    let mut nodes = Nodes::start(2, schema.url(), &[]);
    nodes.wait_healthy(&http).await;
    let db = PgPoolOptions::new()
        .max_connections(2)
        .connect(schema.url())
        .await
        .unwrap();
    let survivor = nodes.urls[0].clone();
    let team = setup_integration(&http, &survivor, &emulator.base_url()).await;
    // Slow enough that the victim holds leases for a while.
    emulator.set_latency(Duration::from_millis(1_000));

    // Every request goes to the survivor, so none is lost with the victim; both
    // engines lease the links.
    let incidents = open_at_once(&http, std::slice::from_ref(&survivor), &team, 32).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let orphaned = loop {
        let held = leases_of(&db, 1).await;
        if !held.is_empty() {
            nodes.children[1].kill().unwrap();
            nodes.children[1].wait().unwrap();
            break held;
        }
        assert!(Instant::now() < deadline, "the victim never held a lease");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(!orphaned.is_empty());
    // The old default lease was 90 s; the default now is 15 s.
    assert_one_record_each(
        &http,
        &survivor,
        &emulator,
        &incidents,
        Duration::from_secs(40),
        &nodes,
    )
    .await;
    db.close().await;
    drop(nodes);
    drop(schema);
}

/// A node opens an alert whose key it has not seen held without reading first, and
/// learns the holder from the store's refusal. Keys another node opened are unknown
/// here: each alert must still land on its one incident, whichever node hears it, and
/// a storm of one key's repeats on both nodes at once must open it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_key_is_one_incident_whichever_node_hears_it() {
    let schema = TestSchema::create().await;
    let http = reqwest::Client::new();
    let mut nodes = Nodes::start(2, schema.url(), &[]);
    nodes.wait_healthy(&http).await;
    let team = post(
        &http,
        &nodes.urls[0],
        "/api/v1/teams",
        json!({"name": "core"}),
    )
    .await;
    let source = post(
        &http,
        &nodes.urls[0],
        "/api/v1/sources",
        json!({"team_id": team["id"], "type": "webhook", "name": "hook"}),
    )
    .await;
    let ingest_url = source["ingest_url"].as_str().unwrap();
    let ingest = &ingest_url[ingest_url.find("/ingest/").unwrap()..];
    let alert = |node: usize, key: &str, status: &str, severity: &str| {
        let (http, url) = (http.clone(), format!("{}{ingest}", nodes.urls[node]));
        let body = json!({"dedup_key": key, "status": status, "title": format!("disk {key}"),
                          "severity": severity});
        async move {
            let answer = http.post(url).json(&body).send().await.unwrap();
            assert_eq!(answer.status(), 202);
            let answer: Value = answer.json().await.unwrap();
            (
                answer["action"].as_str().unwrap().to_owned(),
                answer["incident_id"].as_str().map(str::to_owned),
            )
        }
    };

    // One key, its life told by turns to each node.
    let (opened, first) = alert(0, "disk", "open", "critical").await;
    assert_eq!(opened, "opened");
    assert_eq!(
        alert(1, "disk", "open", "warning").await,
        ("updated".to_owned(), first.clone())
    );
    assert_eq!(
        alert(0, "disk", "open", "warning").await,
        ("unchanged".to_owned(), first.clone())
    );
    assert_eq!(
        alert(1, "disk", "resolved", "warning").await,
        ("resolved".to_owned(), first.clone())
    );
    // Node 0 last saw the key held; the holder is resolved now, so it opens another.
    let (reopened, second) = alert(0, "disk", "open", "critical").await;
    assert_eq!(reopened, "opened");
    assert_ne!(second, first);
    assert_eq!(
        alert(1, "disk", "open", "minor").await,
        ("updated".to_owned(), second.clone())
    );

    // Fresh keys, each sent to both nodes at once, several times over.
    let keys: Vec<String> = (0..20).map(|n| format!("storm-{n}")).collect();
    let answers: Vec<(String, Option<String>)> = futures::stream::iter(
        keys.iter()
            .flat_map(|key| (0..4).map(move |n| (n % 2, key.clone())))
            .collect::<Vec<_>>(),
    )
    .map(|(node, key)| alert(node, &key, "open", "critical"))
    .buffer_unordered(16)
    .collect()
    .await;
    let opened = answers
        .iter()
        .filter(|(action, _)| action == "opened")
        .count();
    assert_eq!(opened, keys.len(), "{answers:?}");
    let incidents: std::collections::BTreeSet<_> =
        answers.iter().map(|(_, id)| id.clone().unwrap()).collect();
    assert_eq!(incidents.len(), keys.len(), "{answers:?}");

    let listed = send(
        &http,
        reqwest::Method::GET,
        &nodes.urls[1],
        "/api/v1/incidents?limit=1000",
        Value::Null,
    )
    .await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        keys.len() + 2,
        "one incident per storm key, two for the key that was resolved once"
    );
    drop(nodes);
    drop(schema);
}
