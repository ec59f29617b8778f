//! Shared helpers for the conformance tests: a started emulator and a keep-alive client.

use reqwest::{Client, RequestBuilder, Response};
use serde_json::{json, Value};
use snowbound_emulator::{Emulator, EmulatorConfig, User};

pub struct Env {
    pub emu: Emulator,
    pub http: Client,
}

pub async fn start() -> Env {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> Env {
    let emu = Emulator::start(config).await.expect("emulator starts");
    Env {
        emu,
        http: Client::new(),
    }
}

/// admin plus one user per interesting role set.
pub fn users_config() -> EmulatorConfig {
    EmulatorConfig {
        users: [
            "admin:admin:admin",
            "agent:pw:itil",
            "reader:pw:incident_reader",
            "chooser:pw:itil,personalize_choices",
            "nobody:pw:",
        ]
        .iter()
        .map(|s| s.parse::<User>().unwrap())
        .collect(),
        ..EmulatorConfig::default()
    }
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.emu.base_url(), path)
    }

    pub fn as_user(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        pw: &str,
    ) -> RequestBuilder {
        self.http
            .request(method, self.url(path))
            .basic_auth(user, Some(pw))
            .header("Accept", "application/json")
    }

    pub fn req(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        self.as_user(method, path, "admin", "admin")
    }

    pub async fn get(&self, path: &str) -> Response {
        self.req(reqwest::Method::GET, path).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.req(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, body: Value) -> Response {
        self.req(reqwest::Method::PATCH, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Creates an incident as admin and returns its `result`.
    pub async fn create_incident(&self, body: Value) -> Value {
        let resp = self.post("/api/now/table/incident", body).await;
        assert_eq!(resp.status(), 201);
        resp.json::<Value>().await.unwrap()["result"].clone()
    }

    pub async fn resolve_body() -> Value {
        json!({"state": "6", "close_code": "Solution provided", "close_notes": "fixed"})
    }
}

pub async fn body(resp: Response) -> Value {
    resp.json().await.expect("JSON body")
}

pub fn error(message: &str, detail: Option<&str>) -> Value {
    json!({"error": {"message": message, "detail": detail}, "status": "failure"})
}

impl Env {
    /// A POST on a fresh connection, returning the transport result unchanged.
    pub async fn post_raw(&self, body: Value) -> reqwest::Result<Response> {
        Client::new()
            .post(self.url("/api/now/table/incident"))
            .basic_auth("admin", Some("admin"))
            .json(&body)
            .send()
            .await
    }
}
