//! Boots the real router on 127.0.0.1:0 over a SQLite store in a temporary directory.

use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use snowbound_engine::EngineWaker;
use snowbound_server::{hash_token, router, AppState};
use snowbound_servicenow::{Client, ClientConfig};
use snowbound_store::{SecretBox, SqliteStore};
use uuid::Uuid;

pub const ADMIN: &str = "admin-token-for-tests";

pub struct Server {
    pub base: String,
    pub client: reqwest::Client,
    pub store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Answer {
    /// The `field` of a JSON error answer.
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }

    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn id(&self) -> Uuid {
        self.body["id"].as_str().unwrap().parse().unwrap()
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text)
    }
}

/// A server allowing local instances, as tests against the emulator on 127.0.0.1 need
/// (`SNOWBOUND_ALLOW_LOCAL_INSTANCES=true`).
pub async fn start() -> Server {
    start_with(true).await
}

/// A server with the production default: public https instances only.
pub async fn start_public_only() -> Server {
    start_with(false).await
}

async fn start_with(allow_local_instances: bool) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("snowbound.db").display());
    let store = Arc::new(SqliteStore::open(&url, SecretBox::random()).await.unwrap());
    let state = AppState::new(
        store.clone(),
        EngineWaker::new(),
        "http://snowbound.test/",
        hash_token(ADMIN),
    )
    .with_servicenow_client(
        Client::new(ClientConfig {
            allow_local_instances,
            ..ClientConfig::default()
        })
        .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(state)).await.unwrap() });
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        store,
        _dir: dir,
    }
}

impl Server {
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            assert_eq!(
                content_type.as_deref(),
                Some("application/json"),
                "every answer with a body is JSON: {status} {text}"
            );
            serde_json::from_str(&text).unwrap()
        };
        Answer { status, body, text }
    }

    pub fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let request = self.client.request(method, format!("{}{path}", self.base));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.request(method, path, Some(token));
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, ADMIN, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, ADMIN, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, ADMIN, Some(body)).await
    }

    /// The integration's password as stored (decrypted).
    pub async fn store_password(&self, integration: Uuid) -> String {
        use secrecy::ExposeSecret;
        use snowbound_store::Store;
        let secret = self
            .store
            .integration_credentials(integration)
            .await
            .unwrap()
            .password
            .unwrap();
        secret.expose_secret().to_owned()
    }

    pub async fn team(&self, name: &str) -> Uuid {
        let answer = self.post("/api/v1/teams", json!({"name": name})).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.id()
    }

    /// A team token for `teams`, named `name` (the actor in timelines).
    pub async fn token(&self, name: &str, teams: &[Uuid]) -> String {
        let answer = self
            .post("/api/v1/tokens", json!({"name": name, "team_ids": teams}))
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["token"].as_str().unwrap().to_owned()
    }

    pub async fn integration(&self, team: Uuid, forwarding: &str) -> Uuid {
        let mut body = integration_body(team);
        body["forwarding"] = json!(forwarding);
        let answer = self.post("/api/v1/integrations", body).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.id()
    }

    pub async fn incident(&self, team: Uuid, title: &str) -> Uuid {
        let body = json!({"team_id": team, "title": title, "severity": "warning"});
        let answer = self.post("/api/v1/incidents", body).await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.id()
    }
}

pub const PASSWORD: &str = "pw-never-shown-7f3a";

/// The smallest valid integration: everything else takes the seed's defaults.
pub fn integration_body(team: Uuid) -> Value {
    json!({
        "display_name": "ServiceNow",
        "root_team_id": team,
        "type": "servicenow",
        "servicenow": {
            // Nothing listens there: ServiceNow is unreachable, so no choice warnings.
            "instance_url": "http://127.0.0.1:9",
            "username": "snowbound",
            "password": PASSWORD,
            "close_code": "Solution provided",
        }
    })
}
