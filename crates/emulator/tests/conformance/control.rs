//! Conformance of the test machinery: fault injection, latency, the request log, reset and
//! dumps, through the Rust API and the `/emulator` control API; and the HTML page.

use std::time::Duration;

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};
use snowbound_emulator::{ApiSemaphores, EmulatorConfig, Fault};

#[tokio::test]
async fn rust_api_status_fault_for_next_n_requests_then_normal() {
    let env = start().await;
    env.emu
        .add_fault(Fault::status("POST", "/api/now/table/incident", 503).times(2));
    for _ in 0..2 {
        let resp = env.post("/api/now/table/incident", json!({})).await;
        assert_eq!(resp.status(), 503);
        assert_eq!(body(resp).await["status"], "failure");
    }
    // GETs do not match the fault.
    assert_eq!(env.get("/api/now/table/incident").await.status(), 200);
    assert_eq!(
        env.post("/api/now/table/incident", json!({}))
            .await
            .status(),
        201
    );
    assert_eq!(
        env.emu.records("incident").len(),
        1,
        "faulted requests wrote nothing"
    );
}

#[tokio::test]
async fn injected_429_has_servicenow_body_and_retry_after() {
    let env = start().await;
    env.emu
        .add_fault(Fault::status("*", "/api/now/*/incident", 429).with_retry_after(7));
    let resp = env.get("/api/now/v2/table/incident").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert_eq!(body(resp).await["error"]["message"], "Rate limit exceeded");
}

#[tokio::test]
async fn control_api_fault_with_custom_body() {
    let env = start().await;
    // No Content-Type needed (curl -d); invalid JSON is a 400.
    let resp = env
        .http
        .post(env.url("/emulator/faults"))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = env
        .http
        .post(env.url("/emulator/faults"))
        .json(&json!({"method": "GET", "path": "/api/now/table/incident", "times": 1,
                      "action": "status", "status": 500, "body": {"error": {"message": "boom", "detail": null}, "status": "failure"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let listed: Value = env
        .http
        .get(env.url("/emulator/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["faults"].as_array().unwrap().len(), 1);
    let resp = env.get("/api/now/table/incident").await;
    assert_eq!(resp.status(), 500);
    assert_eq!(body(resp).await["error"]["message"], "boom");
    assert_eq!(env.get("/api/now/table/incident").await.status(), 200);
}

#[tokio::test]
async fn hang_never_answers_until_client_times_out() {
    let env = start().await;
    env.emu
        .add_fault(Fault::hang("GET", "/api/now/table/incident"));
    let err = env
        .req(Method::GET, "/api/now/table/incident")
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    let log = env.emu.requests();
    assert_eq!(log.last().unwrap().status, None);
    assert_eq!(log.last().unwrap().fault.as_deref(), Some("hang"));
    // The fault was used up; the next request is answered.
    assert_eq!(env.get("/api/now/table/incident").await.status(), 200);
}

#[tokio::test]
async fn drop_after_write_creates_the_record_but_sends_no_answer() {
    let env = start().await;
    env.emu
        .add_fault(Fault::drop_after_write("POST", "/api/now/table/incident"));
    let err = env
        .post_raw(json!({"short_description": "ambiguous", "correlation_id": "k-1"}))
        .await
        .unwrap_err();
    assert!(!err.is_timeout() && !err.is_status(), "{err}");
    // The record exists: the client must reconcile by correlation_id (§7).
    assert_eq!(
        env.emu.records_by_correlation_id("incident", "k-1").len(),
        1
    );
    let found = body(
        env.get(
            "/api/now/table/incident?sysparm_query=correlation_id=k-1&sysparm_fields=sys_id,number",
        )
        .await,
    )
    .await;
    assert_eq!(found["result"].as_array().unwrap().len(), 1);
    let last = env
        .emu
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(last.status, Some(201));
    assert_eq!(last.fault.as_deref(), Some("drop_after_write"));
}

#[tokio::test]
async fn latency_fault_and_base_latency_still_answer() {
    let env = start().await;
    env.emu
        .add_fault(Fault::latency("GET", "/api", Duration::from_millis(20)));
    env.emu.set_latency(Duration::from_millis(5));
    assert_eq!(env.get("/api/now/table/incident").await.status(), 200);
    assert_eq!(env.emu.requests()[0].fault.as_deref(), Some("latency"));
    let resp = env
        .http
        .put(env.url("/emulator/latency"))
        .json(&json!({"ms": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got: Value = env
        .http
        .get(env.url("/emulator/latency"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got["ms"], 0);
}

#[tokio::test]
async fn request_log_records_method_path_query_body_status_time() {
    let env = start().await;
    let before = chrono::Utc::now();
    env.post(
        "/api/now/table/incident?sysparm_fields=number",
        json!({"short_description": "logged"}),
    )
    .await;
    env.req(Method::POST, "/api/now/table/incident")
        .body("not json")
        .send()
        .await
        .unwrap();
    let log = env.emu.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].method, "POST");
    assert_eq!(log[0].path, "/api/now/table/incident");
    assert_eq!(log[0].query, "sysparm_fields=number");
    assert_eq!(log[0].body, json!({"short_description": "logged"}));
    assert_eq!(log[0].status, Some(201));
    assert_eq!(log[0].user.as_deref(), Some("admin"));
    assert!(log[0].received_at >= before - chrono::Duration::seconds(1));
    assert_eq!(log[1].body, json!("not json"));
    assert_eq!(log[1].status, Some(400));
    let ctl: Value = env
        .http
        .get(env.url("/emulator/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ctl["requests"].as_array().unwrap().len(), 2);
    assert_eq!(ctl["requests"][0]["status"], 201);
    assert_eq!(ctl["dropped"], 0);
    // Control API calls are not logged.
    assert_eq!(env.emu.requests().len(), 2);
}

#[tokio::test]
async fn reset_clears_records_journal_faults_log_and_numbering() {
    let env = start().await;
    env.create_incident(json!({"work_notes": "n"})).await;
    env.emu
        .add_fault(Fault::status("GET", "/nowhere", 500).always());
    env.emu.reset();
    assert!(env.emu.records("incident").is_empty());
    assert!(env.emu.requests().is_empty());
    let r = env.create_incident(json!({})).await;
    assert_eq!(r["number"], "INC0010001");
    let resp = env
        .http
        .post(env.url("/emulator/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(env.emu.records("incident").is_empty());
    // sys_choice is back to the seed after a reset.
    assert!(!env.emu.records("sys_choice").is_empty());
}

#[tokio::test]
async fn dump_all_records_through_control_api() {
    let env = start().await;
    let r = env
        .create_incident(json!({"short_description": "dumped"}))
        .await;
    let id = r["sys_id"].as_str().unwrap();
    let all: Value = env
        .http
        .get(env.url("/emulator/records"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all["incident"][0]["short_description"], "dumped");
    assert!(all["sys_choice"].as_array().unwrap().len() > 40);
    let one: Value = env
        .http
        .get(env.url(&format!("/emulator/records/incident/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["record"]["sys_id"], id);
    let table: Value = env
        .http
        .get(env.url("/emulator/records/incident"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(table["records"].as_array().unwrap().len(), 1);
    assert_eq!(
        env.emu.record("incident", id).unwrap()["short_description"],
        "dumped"
    );
}

#[tokio::test]
async fn html_page_lists_incidents_escaped() {
    let env = start().await;
    env.create_incident(
        json!({"short_description": "<script>alert('x')</script>", "correlation_id": "c&1"}),
    )
    .await;
    let resp = env.http.get(env.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = resp.text().await.unwrap();
    assert!(html.contains("INC0010001"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(!html.contains("<script>"));
    assert!(html.contains("c&amp;1"));
    assert!(html.contains("<td>New</td>"), "state label");
    assert!(html.contains("3 - Low"), "urgency label");
}

#[tokio::test]
async fn shutdown_stops_the_server() {
    let env = start().await;
    let url = env.url("/api/now/table/incident");
    env.emu.clone().shutdown().await;
    let err = reqwest::Client::new()
        .get(url)
        .basic_auth("admin", Some("admin"))
        .send()
        .await;
    assert!(err.is_err());
}

#[tokio::test]
async fn s5_busy_semaphores_and_a_full_queue_refuse_with_a_429_without_retry_after() {
    let env = start_with(EmulatorConfig {
        api_semaphores: Some(ApiSemaphores { slots: 1, queue: 1 }),
        ..Default::default()
    })
    .await;
    // The one semaphore is taken by a request that hangs.
    env.emu
        .add_fault(Fault::hang("GET", "/api/now/table/incident"));
    let holder = tokio::spawn(env.req(Method::GET, "/api/now/table/incident").send());
    while !env
        .emu
        .requests()
        .iter()
        .any(|r| r.fault.as_deref() == Some("hang"))
    {
        tokio::task::yield_now().await;
    }
    // Of two more, one waits in the queue and the other is refused at once.
    let mut first = tokio::spawn(env.req(Method::GET, "/api/now/table/incident").send());
    let mut second = tokio::spawn(env.req(Method::GET, "/api/now/table/incident").send());
    let refused = tokio::select! {
        r = &mut first => r,
        r = &mut second => r,
    }
    .unwrap()
    .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(!refused.headers().contains_key("retry-after"));
    assert!(!refused.headers().contains_key("x-ratelimit-limit"));
    assert!(
        !first.is_finished() || !second.is_finished(),
        "the queued one still waits"
    );
    let log = env.emu.requests();
    assert_eq!(log.last().unwrap().fault.as_deref(), Some("semaphores"));
    holder.abort();
    first.abort();
    second.abort();
}
