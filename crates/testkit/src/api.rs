//! A typed client of the HTTP API: every call answers an [`Answer`]; the plain verbs
//! (`get`, `post`, `patch`) are for steps that must succeed and answer the JSON body.

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::ADMIN_TOKEN;

/// One answer: status, JSON body (`Null` when empty, a string when not JSON) and text.
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).expect("a valid status")
    }

    pub fn is_success(&self) -> bool {
        self.status_code().is_success()
    }

    /// The `field` of a JSON error answer.
    pub fn field(&self) -> &str {
        self.body["error"]["field"].as_str().unwrap_or("")
    }

    /// The `code` of a JSON error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn id(&self) -> Uuid {
        crate::id(&self.body)
    }

    /// Status and body, for tests that match on both.
    pub fn parts(self) -> (StatusCode, Value) {
        (self.status_code(), self.body)
    }

    /// The `rel="next"` address of the `Link` header, as a path (`/api/v1/…`).
    pub fn next_link(&self) -> Option<String> {
        let link = self.headers.get("link")?.to_str().ok()?;
        let target = link.strip_suffix(">; rel=\"next\"")?.strip_prefix('<')?;
        Some(target.to_owned())
    }

    /// The body of an answer that must be a success.
    pub fn ok(self, what: &str) -> Value {
        assert!(self.is_success(), "{what} answered {self:?}");
        self.body
    }
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.text)
    }
}

/// The API of one running Snowbound, called as the admin unless a token is given.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: String) -> Api {
        Api {
            base,
            http: reqwest::Client::new(),
        }
    }

    /// A request to `path` with `token` as bearer (none: anonymous).
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`. Answers of the API and of ingest must be JSON whenever they have
    /// a body: that is part of what every test checks.
    pub async fn send(&self, request: RequestBuilder) -> Answer {
        let request = request.build().expect("a valid request");
        let path = request.url().path().to_owned();
        let response = self
            .http
            .execute(request)
            .await
            .expect("the request reaches Snowbound");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let json = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let text = response.text().await.expect("the whole answer arrives");
        let body = if text.is_empty() {
            Value::Null
        } else if json {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
        } else {
            assert!(
                !path.starts_with("/api/") && !path.starts_with("/ingest/"),
                "every API answer with a body is JSON: {path} answered {status} {text}"
            );
            Value::String(text.clone())
        };
        Answer {
            status,
            body,
            text,
            headers,
        }
    }

    /// A call as `token` (a team token, a wrong one, ...).
    pub async fn call_as(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Answer {
        self.call_with(method, path, Some(token), body).await
    }

    /// A call without any token.
    pub async fn call_anonymous(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, None, body).await
    }

    /// A call as the admin, whatever it answers.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_with(method, path, Some(ADMIN_TOKEN), body).await
    }

    /// A call as `token`, or anonymous.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut request = self.request(method, path, token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    pub async fn try_get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn try_post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn try_patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn try_delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// GET as the admin that must succeed; answers the JSON body.
    pub async fn get(&self, path: &str) -> Value {
        self.try_get(path).await.ok(&format!("GET {path}"))
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.try_post(path, body).await.ok(&format!("POST {path}"))
    }

    pub async fn patch(&self, path: &str, body: Value) -> Value {
        self.try_patch(path, body)
            .await
            .ok(&format!("PATCH {path}"))
    }

    /// POSTs an alert body to an ingest URL (no bearer token: the URL is the credential).
    pub async fn send_alert(&self, ingest_url: &str, body: Value) -> Answer {
        self.send(self.http.post(ingest_url).json(&body)).await
    }

    pub async fn team(&self, name: &str) -> Uuid {
        crate::id(&self.post("/api/v1/teams", json!({ "name": name })).await)
    }

    /// A team token for `teams`, named `name` (the actor in timelines).
    pub async fn token(&self, name: &str, teams: &[Uuid]) -> String {
        let answer = self
            .post("/api/v1/tokens", json!({"name": name, "team_ids": teams}))
            .await;
        answer["token"].as_str().expect("a token").to_owned()
    }

    pub async fn incident(&self, team: Uuid, title: &str, severity: &str) -> Uuid {
        let body = json!({ "team_id": team, "title": title, "severity": severity, "description": "details" });
        crate::id(&self.post("/api/v1/incidents", body).await)
    }
}
