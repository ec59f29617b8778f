//! The control API's authentication routes: OAuth clients, token lifespans, revoking and
//! expiring tokens, system properties, API keys and their access policy, users and their
//! flags (docs/servicenow/AUTH_AND_INBOUND.md §1). Secrets go in, never out.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::User;
use crate::control::{bad_request, not_found};
use crate::identity::{ApiKey, OAuthClient};
use crate::server::Shared;

type S = State<Arc<Shared>>;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/oauth", get(oauth))
        .route("/oauth/clients", post(add_client))
        .route("/oauth/clients/{client_id}", delete(remove_client))
        .route("/oauth/lifespans", put(set_lifespans))
        .route("/oauth/tokens", delete(revoke_tokens))
        .route("/oauth/tokens/expire", post(expire_tokens))
        .route("/properties", get(properties).put(set_properties))
        .route(
            "/api_keys",
            get(api_keys).post(add_api_key).delete(clear_api_keys),
        )
        .route(
            "/api_key_policy",
            get(api_key_policy).put(set_api_key_policy),
        )
        .route("/users/{name}", patch(patch_user))
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, serde_json::Error> {
    // An empty body means "no options" for the routes whose body is optional.
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body)
}

fn oauth_summary(s: &Shared) -> Value {
    let auth = s.auth();
    let (access, refresh) = auth.count_live();
    let clients: Vec<Value> = auth
        .clients
        .iter()
        .map(|c| json!({"client_id": c.client_id, "application_user": c.application_user}))
        .collect();
    json!({
        "clients": clients,
        "access_token_lifespan_s": auth.access_lifespan.as_secs(),
        "refresh_token_lifespan_s": auth.refresh_lifespan.as_secs(),
        "live_access_tokens": access,
        "live_refresh_tokens": refresh,
        "issued": auth.issued,
    })
}

async fn oauth(State(s): S) -> impl IntoResponse {
    Json(oauth_summary(&s))
}

async fn add_client(State(s): S, body: Bytes) -> Response {
    let client: OAuthClient = match parse(&body) {
        Ok(c) => c,
        Err(e) => return bad_request(e),
    };
    s.auth().add_client(client);
    (StatusCode::CREATED, Json(oauth_summary(&s))).into_response()
}

async fn remove_client(State(s): S, Path(client_id): Path<String>) -> Response {
    let mut auth = s.auth();
    let before = auth.clients.len();
    auth.clients.retain(|c| c.client_id != client_id);
    if auth.clients.len() == before {
        return not_found("no such client");
    }
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct Lifespans {
    access_token_s: Option<u64>,
    refresh_token_s: Option<u64>,
}

async fn set_lifespans(State(s): S, body: Bytes) -> Response {
    let l: Lifespans = match parse(&body) {
        Ok(l) => l,
        Err(e) => return bad_request(e),
    };
    {
        let mut auth = s.auth();
        if let Some(n) = l.access_token_s {
            auth.access_lifespan = Duration::from_secs(n);
        }
        if let Some(n) = l.refresh_token_s {
            auth.refresh_lifespan = Duration::from_secs(n);
        }
    }
    Json(oauth_summary(&s)).into_response()
}

async fn revoke_tokens(State(s): S) -> StatusCode {
    s.auth().revoke_tokens();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Expire {
    #[serde(default)]
    refresh_tokens: bool,
}

async fn expire_tokens(State(s): S, body: Bytes) -> Response {
    let e: Expire = match parse(&body) {
        Ok(e) => e,
        Err(e) => return bad_request(e),
    };
    s.auth().expire_tokens(e.refresh_tokens);
    StatusCode::NO_CONTENT.into_response()
}

async fn properties(State(s): S) -> impl IntoResponse {
    Json(json!({ "properties": s.auth().properties }))
}

/// `{"name": value}` merged over the current properties; `true`/`5` become strings, as
/// every sys_properties value is one.
async fn set_properties(State(s): S, body: Bytes) -> Response {
    let given: serde_json::Map<String, Value> = match parse(&body) {
        Ok(m) => m,
        Err(e) => return bad_request(e),
    };
    let mut auth = s.auth();
    for (name, value) in given {
        let value = match value {
            Value::String(v) => v,
            other => other.to_string(),
        };
        auth.properties.insert(name, value);
    }
    Json(json!({ "properties": auth.properties })).into_response()
}

fn api_key_list(s: &Shared) -> Value {
    let auth = s.auth();
    let keys: Vec<Value> = auth
        .api_keys
        .iter()
        .map(|k| json!({"user": k.user, "expires_at": k.expires_at}))
        .collect();
    json!({ "api_keys": keys, "policy": auth.api_key_policy })
}

async fn api_keys(State(s): S) -> impl IntoResponse {
    Json(api_key_list(&s))
}

async fn add_api_key(State(s): S, body: Bytes) -> Response {
    let key: ApiKey = match parse(&body) {
        Ok(k) => k,
        Err(e) => return bad_request(e),
    };
    s.auth().add_api_key(key);
    (StatusCode::CREATED, Json(api_key_list(&s))).into_response()
}

async fn clear_api_keys(State(s): S) -> StatusCode {
    s.auth().api_keys.clear();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct Policy {
    exists: bool,
}

async fn api_key_policy(State(s): S) -> impl IntoResponse {
    Json(json!({ "exists": s.auth().api_key_policy }))
}

async fn set_api_key_policy(State(s): S, body: Bytes) -> Response {
    let p: Policy = match parse(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(e),
    };
    s.auth().api_key_policy = p.exists;
    Json(json!({ "exists": p.exists })).into_response()
}

/// `POST /emulator/users`: adds a user or replaces the one with that name.
pub(crate) async fn upsert_user(State(s): S, body: Bytes) -> Response {
    let user: User = match parse(&body) {
        Ok(u) => u,
        Err(e) => return bad_request(e),
    };
    s.data().upsert_user(&user);
    s.auth().upsert_user(user);
    StatusCode::CREATED.into_response()
}

#[derive(Deserialize)]
struct UserPatch {
    password: Option<String>,
    roles: Option<Vec<String>>,
    web_service_access_only: Option<bool>,
}

async fn patch_user(State(s): S, Path(name): Path<String>, body: Bytes) -> Response {
    let p: UserPatch = match parse(&body) {
        Ok(p) => p,
        Err(e) => return bad_request(e),
    };
    let Some(mut user) = s.auth().user(&name).cloned() else {
        return not_found("no such user");
    };
    if let Some(pw) = p.password {
        user.password = pw;
    }
    if let Some(roles) = p.roles {
        user.roles = roles;
    }
    if let Some(flag) = p.web_service_access_only {
        user.web_service_access_only = flag;
    }
    s.data().upsert_user(&user);
    let shown = json!({"name": user.name, "roles": user.roles,
                       "web_service_access_only": user.web_service_access_only});
    s.auth().upsert_user(user);
    Json(json!({ "user": shown })).into_response()
}
