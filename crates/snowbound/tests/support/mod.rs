//! Boots the real Snowbound (store, engine, HTTP API) on a random port against the
//! in-process ServiceNow emulator, and talks to it over HTTP like a user.

#![allow(dead_code)] // each test file uses a different part of the harness

pub mod backend;
pub mod node;

use std::future::Future;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use snowbound::{App, ServeConfig};
use snowbound_emulator::{Emulator, EmulatorConfig, ReceivedRequest};
use snowbound_store::{LinkState, Store};
use tempfile::TempDir;
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token";

pub struct TestApp {
    pub app: Option<App>,
    pub emulator: Emulator,
    pub http: reqwest::Client,
    pub base: String,
    pub dir: TempDir,
}

/// Settings fast enough for tests: short backoff, short leases.
pub fn test_config(dir: &TempDir) -> ServeConfig {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    config.admin_token = Some(ADMIN_TOKEN.into());
    config.retry_base_ms = 20;
    config.retry_max_ms = 200;
    config.servicenow_timeout_ms = 2_000;
    config.lease_ms = 5_000;
    config.rate_limit_cooldown_ms = 150;
    // The emulator listens on 127.0.0.1 over plain http.
    config.allow_local_instances = true;
    config
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(EmulatorConfig::default(), |_| {}).await
    }

    pub async fn spawn_with(
        emulator: EmulatorConfig,
        tweak: impl FnOnce(&mut ServeConfig),
    ) -> TestApp {
        let emulator = Emulator::start(emulator).await.expect("emulator starts");
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(&dir);
        tweak(&mut config);
        let app = App::start(config).await.expect("Snowbound starts");
        TestApp {
            base: app.url(),
            app: Some(app),
            emulator,
            http: reqwest::Client::new(),
            dir,
        }
    }

    pub fn store(&self) -> &dyn Store {
        &*self.app.as_ref().expect("app running").store
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches Snowbound");
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// POST that must succeed; answers the JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(
            status.is_success(),
            "POST {path} answered {status}: {answer}"
        );
        answer
    }

    pub async fn patch(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(reqwest::Method::PATCH, path, Some(body)).await;
        assert!(
            status.is_success(),
            "PATCH {path} answered {status}: {answer}"
        );
        answer
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, answer) = self.call(reqwest::Method::GET, path, None).await;
        assert!(
            status.is_success(),
            "GET {path} answered {status}: {answer}"
        );
        answer
    }

    pub async fn team(&self, name: &str) -> String {
        id(&self.post("/api/v1/teams", json!({ "name": name })).await)
    }

    /// A ServiceNow integration on the emulator as admin, with `extra` merged into
    /// the `servicenow` settings.
    pub async fn integration(&self, team: &str, forwarding: &str, extra: Value) -> String {
        let mut servicenow = json!({
            "instance_url": self.emulator.base_url(),
            "username": "admin",
            "password": "admin",
            "close_code": "Solution provided",
        });
        merge(&mut servicenow, extra);
        let body = json!({
            "display_name": format!("SN {forwarding}"),
            "root_team_id": team,
            "type": "servicenow",
            "forwarding": forwarding,
            "servicenow": servicenow,
        });
        id(&self.post("/api/v1/integrations", body).await)
    }

    pub async fn incident(&self, team: &str, title: &str, severity: &str) -> String {
        id(&self
            .post(
                "/api/v1/incidents",
                json!({ "team_id": team, "title": title, "severity": severity, "description": "details" }),
            )
            .await)
    }

    /// Waits until every link of the incident holds its latest revision in ServiceNow.
    pub async fn wait_synced(&self, incident: &str) {
        let incident_id: Uuid = incident.parse().unwrap();
        eventually(&format!("incident {incident} synced"), || async {
            let links = self.store().links_of_incident(incident_id).await.unwrap();
            !links.is_empty()
                && links
                    .iter()
                    .all(|l| l.state == LinkState::Synced && l.synced_rev == l.rev)
        })
        .await;
    }

    pub fn record(&self, incident: &str) -> Option<std::collections::BTreeMap<String, String>> {
        let mut records = self
            .emulator
            .records_by_correlation_id("incident", incident);
        assert!(
            records.len() <= 1,
            "incident {incident} has {} ServiceNow records",
            records.len()
        );
        records.pop()
    }

    /// The Table API writes ServiceNow received for one record (by sys_id or, for creates,
    /// by correlation id), oldest first.
    pub fn writes_for(&self, incident: &str) -> Vec<ReceivedRequest> {
        let sys_id = self
            .record(incident)
            .map(|r| r["sys_id"].clone())
            .unwrap_or_default();
        self.emulator
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .filter(|r| {
                (!sys_id.is_empty() && r.path.ends_with(&sys_id))
                    || r.body.get("correlation_id").and_then(Value::as_str) == Some(incident)
            })
            .collect()
    }
}

pub fn id(value: &Value) -> String {
    value["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {value}"))
        .to_owned()
}

pub fn merge(target: &mut Value, extra: Value) {
    match (target, extra) {
        (Value::Object(target), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (target, extra) => *target = extra,
    }
}

/// Polls `condition` until it holds; panics with `what` after 20 s.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A request with any token (or none), for scoping tests; answers status and JSON.
pub async fn call_as(
    app: &TestApp,
    token: Option<&str>,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = app.http.request(method, format!("{}{path}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request reaches Snowbound");
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// POSTs an alert body to an ingest URL (no bearer token: the URL is the credential).
pub async fn send_alert(app: &TestApp, ingest_url: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .http
        .post(ingest_url)
        .json(&body)
        .send()
        .await
        .expect("request reaches Snowbound");
    let status = response.status();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The body of a write as a map of field → value.
pub fn body_fields(request: &ReceivedRequest) -> std::collections::BTreeMap<String, String> {
    request
        .body
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}
