//! The control API under `/emulator`: no auth, JSON. The same operations as the Rust
//! API, for tests in other languages and for people poking at the demo.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::business_rules::BusinessRule;
use crate::control_auth;
use crate::faults::Fault;
use crate::server::Shared;

type S = State<Arc<Shared>>;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/requests", get(requests).delete(clear_requests))
        .route("/faults", get(faults).post(add_fault).delete(clear_faults))
        .route("/latency", get(latency).put(set_latency))
        .route("/reset", post(reset))
        .route("/records", get(all_records))
        .route("/records/{table}", get(table_records))
        .route("/records/{table}/{sys_id}", get(one_record))
        .route("/journal", get(all_journal))
        .route("/journal/{table}/{sys_id}", get(record_journal))
        .route("/users", get(users).post(control_auth::upsert_user))
        .route(
            "/business_rules",
            get(business_rules)
                .post(add_business_rule)
                .delete(clear_business_rules),
        )
        .route("/business_rules/deliveries", get(deliveries))
        .merge(control_auth::router())
        .merge(crate::act_as::router())
}

async fn business_rules(State(s): S) -> impl IntoResponse {
    Json(json!({ "business_rules": s.control().business_rules }))
}

async fn add_business_rule(State(s): S, body: Bytes) -> axum::response::Response {
    let rule: BusinessRule = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let mut c = s.control();
    c.business_rules.push(rule);
    (
        StatusCode::CREATED,
        Json(json!({ "business_rules": c.business_rules })),
    )
        .into_response()
}

async fn clear_business_rules(State(s): S) -> StatusCode {
    s.control().business_rules.clear();
    StatusCode::NO_CONTENT
}

async fn deliveries(State(s): S) -> impl IntoResponse {
    let c = s.control();
    let list: Vec<_> = c.deliveries.entries.iter().collect();
    Json(json!({ "deliveries": list, "failed": c.deliveries.failed }))
}

async fn requests(State(s): S) -> impl IntoResponse {
    let c = s.control();
    let list: Vec<_> = c.log.entries.iter().collect();
    Json(json!({ "requests": list, "dropped": c.log.dropped }))
}

async fn clear_requests(State(s): S) -> StatusCode {
    s.control().log = Default::default();
    StatusCode::NO_CONTENT
}

async fn faults(State(s): S) -> impl IntoResponse {
    Json(json!({ "faults": s.control().faults.list() }))
}

/// Bodies are read as JSON whatever the Content-Type, so `curl -d '{…}'` works.
pub(crate) fn bad_request(e: serde_json::Error) -> axum::response::Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": e.to_string() })),
    )
        .into_response()
}

async fn add_fault(State(s): S, body: Bytes) -> axum::response::Response {
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(e),
    };
    let mut c = s.control();
    c.faults.add(fault);
    (
        StatusCode::CREATED,
        Json(json!({ "faults": c.faults.list() })),
    )
        .into_response()
}

async fn clear_faults(State(s): S) -> StatusCode {
    s.control().faults.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Latency {
    ms: u64,
}

async fn latency(State(s): S) -> impl IntoResponse {
    Json(json!({ "ms": s.control().latency.as_millis() as u64 }))
}

async fn set_latency(State(s): S, body: Bytes) -> axum::response::Response {
    let l: Latency = match serde_json::from_slice(&body) {
        Ok(l) => l,
        Err(e) => return bad_request(e),
    };
    s.control().latency = Duration::from_millis(l.ms);
    Json(json!({ "ms": l.ms })).into_response()
}

async fn reset(State(s): S) -> StatusCode {
    s.reset();
    StatusCode::NO_CONTENT
}

async fn all_records(State(s): S) -> impl IntoResponse {
    let data = s.data();
    let mut out = Map::new();
    let names: Vec<String> = data.table_names().cloned().collect();
    for name in names {
        if let Some(def) = data.def(&name) {
            let rows: Vec<_> = data.visible(def).cloned().collect();
            out.insert(name, json!(rows));
        }
    }
    Json(Value::Object(out))
}

async fn table_records(State(s): S, Path(table): Path<String>) -> axum::response::Response {
    let data = s.data();
    match data.def(&table) {
        Some(def) => {
            let rows: Vec<_> = data.visible(def).cloned().collect();
            Json(json!({ "records": rows })).into_response()
        }
        None => not_found("no such table"),
    }
}

async fn one_record(
    State(s): S,
    Path((table, sys_id)): Path<(String, String)>,
) -> axum::response::Response {
    let data = s.data();
    match data.def(&table).and_then(|d| data.get(d, &sys_id)) {
        Some(r) => Json(json!({ "record": r })).into_response(),
        None => not_found("no such record"),
    }
}

async fn all_journal(State(s): S) -> impl IntoResponse {
    Json(json!({ "entries": s.data().journal_all() }))
}

async fn record_journal(
    State(s): S,
    Path((_table, sys_id)): Path<(String, String)>,
) -> impl IntoResponse {
    Json(json!({ "entries": s.data().journal_of(&sys_id) }))
}

async fn users(State(s): S) -> impl IntoResponse {
    let users = s.users();
    let data = s.data();
    let list: Vec<Value> = users
        .iter()
        .map(|u| {
            json!({
                "name": u.name,
                "roles": u.roles,
                "rate_limit": u.rate_limit,
                "web_service_access_only": u.web_service_access_only,
                "sys_id": data.user_sys_id(&u.name),
            })
        })
        .collect();
    Json(json!({ "users": list }))
}

pub(crate) fn not_found(msg: &str) -> axum::response::Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": msg }))).into_response()
}
