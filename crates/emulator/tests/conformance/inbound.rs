//! Conformance: changes flowing back from ServiceNow (docs/servicenow/AUTH_AND_INBOUND.md
//! §2): outbound business rules posting `{sys_id, table}` as `executeAsync` does (§2.2),
//! agents editing records (acting as another user), and the polling queries of §2.3.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{json, Value};
use snowbound_emulator::{ActAsError, BusinessRule, EmulatorConfig, User};
use tokio::sync::Semaphore;

/// A webhook receiver on 127.0.0.1: records each post; answers `status`; waits for a
/// permit first when `gate` is set.
#[derive(Clone)]
struct Receiver {
    posts: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
    status: StatusCode,
    gate: Option<Arc<Semaphore>>,
}

impl Receiver {
    async fn start(status: StatusCode, gate: Option<Arc<Semaphore>>) -> (Receiver, String) {
        let r = Receiver {
            posts: Arc::default(),
            status,
            gate,
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn bodies(&self) -> Vec<Value> {
        self.posts
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: String) -> StatusCode {
    if let Some(gate) = &r.gate {
        let _permit = gate.acquire().await.unwrap();
    }
    let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
    r.posts.lock().unwrap().push((headers, body));
    r.status
}

/// Polls until `cond` holds; fails after 10 s instead of hanging.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..1000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn config() -> EmulatorConfig {
    EmulatorConfig {
        users: vec![
            User::new("admin", "admin", &["admin"]),
            User::new("agent", "pw", &["itil"]),
        ],
        extra_tables: vec!["u_major_incident:MAJ".into()],
        ..EmulatorConfig::default()
    }
}

#[tokio::test]
async fn s2_2_business_rule_posts_sys_id_and_table_after_insert_and_update_by_anyone() {
    let env = start_with(config()).await;
    let (receiver, url) = Receiver::start(StatusCode::OK, None).await;
    let resp = env
        .http
        .post(env.url("/emulator/business_rules"))
        .json(&json!({"table": "incident", "url": url}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    let created = env
        .create_incident(json!({"short_description": "disk"}))
        .await;
    let id = created["sys_id"].as_str().unwrap().to_string();
    eventually("the insert post", || receiver.bodies().len() == 1).await;
    assert_eq!(
        receiver.bodies()[0],
        json!({"sys_id": id, "table": "incident"})
    );
    let (headers, _) = receiver.posts.lock().unwrap()[0].clone();
    assert_eq!(headers["content-type"], "application/json");
    assert!(
        !headers.contains_key("authorization"),
        "the post carries no credentials"
    );

    // An agent's edit in the UI fires the rule too, whoever made the change.
    env.emu
        .update_as("agent", "incident", &id, json!({"state": "2"}))
        .unwrap();
    // A child table's record posts its own table name (current.getTableName()).
    let resp = env
        .post(
            "/api/now/table/u_major_incident",
            json!({"short_description": "big"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let child = body(resp).await["result"]["sys_id"]
        .as_str()
        .unwrap()
        .to_string();
    // An update that changes nothing is not written and fires nothing; the next real
    // change does.
    let path = format!("/api/now/table/incident/{id}");
    assert_eq!(env.patch(&path, json!({"state": "2"})).await.status(), 200);
    assert_eq!(
        env.patch(&path, json!({"work_notes": "looking"}))
            .await
            .status(),
        200
    );
    eventually("four posts", || {
        env.emu.business_rule_deliveries().len() == 4
    })
    .await;
    let mut bodies = receiver.bodies();
    bodies.sort_by_key(|b| b.to_string());
    let mut expected = vec![
        json!({"sys_id": id, "table": "incident"}),
        json!({"sys_id": id, "table": "incident"}),
        json!({"sys_id": id, "table": "incident"}),
        json!({"sys_id": child, "table": "u_major_incident"}),
    ];
    expected.sort_by_key(|b| b.to_string());
    assert_eq!(bodies, expected);
    let ops: Vec<String> = env
        .emu
        .business_rule_deliveries()
        .iter()
        .filter(|d| d.sys_id == id)
        .map(|d| d.operation.clone())
        .collect();
    assert_eq!(ops.iter().filter(|o| *o == "insert").count(), 1);
    assert_eq!(ops.iter().filter(|o| *o == "update").count(), 2);
    assert_eq!(env.emu.failed_business_rule_deliveries(), 0);
}

#[tokio::test]
async fn s2_2_posts_never_block_the_write_and_failed_posts_are_dropped_but_counted() {
    let env = start_with(config()).await;
    let gate = Arc::new(Semaphore::new(0));
    let (slow, slow_url) = Receiver::start(StatusCode::OK, Some(gate.clone())).await;
    let (_broken, broken_url) = Receiver::start(StatusCode::INTERNAL_SERVER_ERROR, None).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    for url in [&slow_url, &broken_url, &closed] {
        env.emu
            .add_business_rule(BusinessRule::new("incident", url));
    }
    // The slow receiver holds its post until released: if the write waited for it, this
    // would never answer.
    let created = tokio::time::timeout(
        Duration::from_secs(10),
        env.create_incident(json!({"short_description": "x"})),
    )
    .await
    .expect("the write answers while its business rule post is still pending");
    assert_eq!(env.emu.records("incident").len(), 1);
    eventually("the two failed posts", || {
        env.emu.failed_business_rule_deliveries() == 2
    })
    .await;
    assert!(slow.bodies().is_empty());
    gate.add_permits(1);
    eventually("the slow post", || slow.bodies().len() == 1).await;
    eventually("three deliveries", || {
        env.emu.business_rule_deliveries().len() == 3
    })
    .await;

    let deliveries = env.emu.business_rule_deliveries();
    let by_rule = |rule: usize| deliveries.iter().find(|d| d.rule == rule).unwrap().clone();
    assert!(by_rule(0).succeeded());
    assert_eq!(by_rule(1).status, Some(500));
    assert_eq!(by_rule(2).status, None);
    let error = by_rule(2).error.unwrap();
    assert!(
        !error.contains(&closed),
        "the error does not repeat the URL: {error}"
    );
    assert!(deliveries.iter().all(|d| d.sys_id == created["sys_id"]));
    let ctl: Value = env
        .http
        .get(env.url("/emulator/business_rules/deliveries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ctl["failed"], 2);
    assert_eq!(ctl["deliveries"].as_array().unwrap().len(), 3);
}

fn is_second_resolution(ts: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S").is_ok()
}

#[tokio::test]
async fn s2_3_acting_as_an_agent_keeps_sys_updated_by_on_and_mod_count() {
    let env = start_with(config()).await;
    let created = env.create_incident(json!({"short_description": "x"})).await;
    let id = created["sys_id"].as_str().unwrap();
    assert_eq!(created["sys_mod_count"], "0");

    let rec = env
        .emu
        .update_as(
            "agent",
            "incident",
            id,
            json!({"state": "2", "work_notes": "on it"}),
        )
        .unwrap();
    assert_eq!(rec["sys_updated_by"], "agent");
    assert_eq!(rec["sys_mod_count"], "1");
    assert!(
        is_second_resolution(&rec["sys_updated_on"]),
        "{}",
        rec["sys_updated_on"]
    );
    assert_eq!(rec["sys_created_by"], "admin");
    let notes = env.emu.journal("incident", id);
    assert_eq!(
        (notes[0].value.as_str(), notes[0].sys_created_by.as_str()),
        ("on it", "agent")
    );

    // Through the control API: an agent resolves; the data policy still applies.
    let url = env.url(&format!("/emulator/act_as/agent/incident/{id}"));
    let resp = env
        .http
        .patch(&url)
        .json(&json!({"state": "6"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        body(resp).await,
        error(
            "Operation Failed",
            Some("Data Policy Exception: \n\tThe following fields are mandatory: Resolution code, Resolution notes")
        )
    );
    let resp = env
        .http
        .patch(&url)
        .json(&Env::resolve_body().await)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let rec = body(resp).await["record"].clone();
    assert_eq!(rec["sys_mod_count"], "2");
    assert_eq!(rec["resolved_by"], env.emu.user_sys_id("agent").unwrap());
    // What a poller reads back through the Table API.
    let read = body(env.get(&format!("/api/now/table/incident/{id}")).await).await;
    assert_eq!(read["result"]["sys_updated_by"], "agent");
    assert_eq!(read["result"]["state"], "6");

    // An agent opens an incident.
    let resp = env
        .http
        .post(env.url("/emulator/act_as/agent/incident"))
        .json(&json!({"short_description": "phoned in"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let opened = body(resp).await["record"].clone();
    assert_eq!(opened["opened_by"], env.emu.user_sys_id("agent").unwrap());
    assert_eq!(opened["sys_created_by"], "agent");

    let missing = env
        .http
        .patch(env.url("/emulator/act_as/ghost/incident/x"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        env.emu
            .update_as("agent", "incident", "nosuch", json!({"state": "2"})),
        Err(ActAsError::Refused {
            status: 404,
            message: "No Record found".into(),
            detail: Some("Record doesn't exist or ACL restricts the record retrieval".into())
        })
    );
    assert!(matches!(
        env.emu.create_as("agent", "nosuch", json!({})),
        Err(ActAsError::UnknownTable(_))
    ));
}

async fn ids(env: &Env, query: &str) -> Vec<String> {
    let resp = env
        .req(Method::GET, "/api/now/table/incident")
        .query(&[("sysparm_query", query), ("sysparm_fields", "sys_id")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{query}");
    body(resp).await["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sys_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn s2_3_polling_queries_on_sys_updated_on_with_literals_date_generate_or_nq_and_order() {
    let env = start_with(config()).await;
    let a = env.create_incident(json!({"short_description": "a"})).await;
    let b = env.create_incident(json!({"short_description": "b"})).await;
    let (a_id, b_id) = (a["sys_id"].as_str().unwrap(), b["sys_id"].as_str().unwrap());
    let b_updated = env
        .emu
        .update_as("agent", "incident", b_id, json!({"state": "2"}))
        .unwrap()["sys_updated_on"]
        .clone();
    let ts = a["sys_updated_on"].as_str().unwrap();
    let at = chrono::NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S").unwrap();
    let fmt = |t: chrono::NaiveDateTime| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let before = fmt(at - chrono::Duration::seconds(1));
    let after = fmt(at + chrono::Duration::seconds(3600));
    let (date, time) = ts.split_once(' ').unwrap();

    let both = {
        let mut v = vec![a_id.to_string(), b_id.to_string()];
        v.sort();
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(ids(&env, &format!("sys_updated_on>{before}")).await),
        both
    );
    assert_eq!(
        sorted(ids(&env, &format!("sys_updated_on>={ts}")).await),
        both
    );
    assert!(ids(&env, &format!("sys_updated_on>{after}"))
        .await
        .is_empty());
    assert!(ids(&env, &format!("sys_updated_on<{ts}")).await.is_empty());
    assert_eq!(
        sorted(ids(&env, &format!("sys_updated_on<={b_updated}")).await),
        both
    );
    assert_eq!(
        sorted(
            ids(
                &env,
                &format!("sys_updated_on>=javascript:gs.dateGenerate('{date}','{time}')")
            )
            .await
        ),
        both
    );
    assert!(ids(
        &env,
        &format!("sys_updated_on<javascript:gs.dateGenerate('{date}','{time}')")
    )
    .await
    .is_empty());
    assert_eq!(
        sorted(ids(&env, "sys_updated_on>=javascript:gs.daysAgoStart(1)").await),
        both
    );

    // ^OR, ^NQ, ISEMPTY / ISNOTEMPTY, ORDERBY / ORDERBYDESC.
    assert_eq!(
        ids(&env, "short_description=a^ORshort_description=zzz").await,
        vec![a_id]
    );
    assert_eq!(
        sorted(ids(&env, "state=2^NQshort_description=a").await),
        both
    );
    assert_eq!(
        ids(&env, "state=1^short_descriptionISNOTEMPTY").await,
        vec![a_id]
    );
    assert!(ids(&env, "short_descriptionISEMPTY").await.is_empty());
    assert_eq!(
        ids(&env, "ORDERBYDESCsys_mod_count").await,
        vec![b_id, a_id]
    );
    assert_eq!(
        ids(&env, "ORDERBYsys_mod_count^ORDERBYDESCnumber").await,
        vec![a_id, b_id]
    );
    assert_eq!(ids(&env, "ORDERBYDESCnumber").await, vec![b_id, a_id]);
}
