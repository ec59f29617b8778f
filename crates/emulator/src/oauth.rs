//! `POST /oauth_token.do`: the instance as OAuth provider, with the client credentials,
//! password and refresh token grants (docs/servicenow/AUTH_AND_INBOUND.md §1.2, §1.3).

use std::collections::BTreeMap;
use std::time::Instant;

use axum::response::Response;
use http::request::Parts;
use http::{header, HeaderValue, Method, StatusCode};
use serde_json::{json, Value};

use crate::errors::json_response;
use crate::identity::{new_token, property, AuthState, Grant};
use crate::server::Shared;

pub(crate) const TOKEN_PATH: &str = "/oauth_token.do";

/// Parameters of a token request; the secret ones are never logged.
const TOKEN_PARAMS: &[&str] = &[
    "grant_type",
    "client_id",
    "client_secret",
    "username",
    "password",
    "refresh_token",
    "scope",
];

/// Parameter names whose values are secrets anywhere in a request (query or token form).
pub(crate) const SECRET_PARAMS: &[&str] = &[
    "client_secret",
    "password",
    "refresh_token",
    "access_token",
    "x-sn-apikey",
];

pub(crate) const REDACTED: &str = "[redacted]";

const DEFAULT_SCOPE: &str = "useraccount";

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut resp = json_response(
        status,
        &json!({"error": error, "error_description": description}),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Bad client or user credentials, or a bad refresh token (§1.3).
fn access_denied() -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "server_error", "access_denied")
}

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn unsupported_grant(grant: &str) -> Response {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
        &format!("Unsupported grant type: {grant}"),
    )
}

fn is_form(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

fn form(bytes: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// The body of a token request as the request log keeps it: known parameters, secrets
/// replaced; a body that is not a form is not logged at all.
pub(crate) fn body_for_log(parts: &Parts, bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    if !is_form(parts) {
        return Value::String(format!("{REDACTED} ({} bytes, not a form)", bytes.len()));
    }
    let fields: serde_json::Map<String, Value> = form(bytes)
        .into_iter()
        .map(|(k, v)| {
            let shown =
                if TOKEN_PARAMS.contains(&k.as_str()) && !SECRET_PARAMS.contains(&k.as_str()) {
                    v
                } else {
                    REDACTED.to_string()
                };
            (k, Value::String(shown))
        })
        .collect();
    Value::Object(fields)
}

/// The raw query with the values of secret parameters replaced (percent-encoded
/// `[redacted]`), everything else byte for byte as sent.
pub(crate) fn redact_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    query
        .split('&')
        .map(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            let decoded: String = url::form_urlencoded::parse(name.as_bytes())
                .map(|(k, _)| k.into_owned())
                .next()
                .unwrap_or_default();
            if SECRET_PARAMS.contains(&decoded.as_str()) {
                format!("{name}=%5Bredacted%5D")
            } else {
                pair.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Handles a token request; returns the answer and the user the token acts as.
pub(crate) fn handle(shared: &Shared, parts: &Parts, body: &[u8]) -> (Response, Option<String>) {
    if parts.method != Method::POST {
        let mut resp = oauth_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "POST only",
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return (resp, None);
    }
    let mut auth = shared.auth();
    let query = form(parts.uri.query().unwrap_or("").as_bytes());
    let in_query = query.keys().any(|k| TOKEN_PARAMS.contains(&k.as_str()));
    if in_query && auth.property_is_true(property::PARAMETERS_IN_POST_BODY_ONLY) {
        return (
            invalid_request(
                "OAuth parameters are accepted in the POST body only (glide.oauth.allow.parameters.in.post.body.only)",
            ),
            None,
        );
    }
    if !is_form(parts) {
        return (
            invalid_request("Content-Type must be application/x-www-form-urlencoded"),
            None,
        );
    }
    let mut params = query;
    params.extend(form(body));
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(grant_type) = get("grant_type") else {
        return (invalid_request("grant_type is required"), None);
    };
    if !matches!(
        grant_type,
        "client_credentials" | "password" | "refresh_token"
    ) {
        return (unsupported_grant(grant_type), None);
    }
    if grant_type == "client_credentials"
        && !auth.property_is_true(property::CLIENT_CREDENTIALS_ENABLED)
    {
        return (unsupported_grant(grant_type), None);
    }
    let client = auth
        .clients
        .iter()
        .find(|c| Some(c.client_id.as_str()) == get("client_id"))
        .filter(|c| Some(c.client_secret.as_str()) == get("client_secret"))
        .cloned();
    let Some(client) = client else {
        return (access_denied(), None);
    };
    let mut scope = get("scope").unwrap_or(DEFAULT_SCOPE).to_string();
    let (user, refresh) = match grant_type {
        "client_credentials" => match client
            .application_user
            .as_deref()
            .filter(|u| auth.user(u).is_some())
        {
            // No refresh token: RFC 6749 §4.4.3, and unconfirmed for ServiceNow (§1.2).
            Some(u) => (u.to_string(), None),
            None => return (access_denied(), None),
        },
        "password" => {
            let ok = auth
                .users
                .iter()
                .find(|u| Some(u.name.as_str()) == get("username"))
                .filter(|u| Some(u.password.as_str()) == get("password"))
                .map(|u| u.name.clone());
            match ok {
                Some(u) => (u, Some(new_token())),
                None => return (access_denied(), None),
            }
        }
        _ => {
            let Some(old) = get("refresh_token") else {
                return (access_denied(), None);
            };
            let grant = auth
                .live_refresh(old)
                .filter(|g| g.client_id == client.client_id)
                .filter(|g| auth.user(&g.user).is_some())
                .cloned();
            match grant {
                // The refresh token is kept (with its own expiry) and answered again;
                // without a scope asked for, the original one carries over.
                Some(g) => {
                    if get("scope").is_none() {
                        scope = g.scope;
                    }
                    (g.user, Some(old.to_string()))
                }
                None => return (access_denied(), None),
            }
        }
    };
    let resp = issue(
        &mut auth,
        grant_type,
        &client.client_id,
        &user,
        scope,
        refresh,
    );
    (resp, Some(user))
}

fn issue(
    auth: &mut AuthState,
    grant_type: &str,
    client_id: &str,
    user: &str,
    scope: String,
    refresh: Option<String>,
) -> Response {
    auth.prune();
    let now = Instant::now();
    let grant = |lifespan| Grant {
        user: user.to_string(),
        client_id: client_id.to_string(),
        scope: scope.clone(),
        expires_at: now + lifespan,
    };
    let access = new_token();
    auth.access_tokens
        .insert(access.clone(), grant(auth.access_lifespan));
    if let Some(r) = &refresh {
        if !auth.refresh_tokens.contains_key(r) {
            auth.refresh_tokens
                .insert(r.clone(), grant(auth.refresh_lifespan));
        }
    }
    *auth.issued.entry(grant_type.to_string()).or_default() += 1;
    let mut body = json!({
        "access_token": access,
        "scope": scope,
        "token_type": "Bearer",
        "expires_in": auth.access_lifespan.as_secs(),
    });
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    let mut resp = json_response(StatusCode::OK, &body);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_secrets_are_redacted_and_the_rest_kept_as_sent() {
        assert_eq!(
            redact_query("sysparm_limit=1&x-sn-apikey=k3y&sysparm_query=a%3D1"),
            "sysparm_limit=1&x-sn-apikey=%5Bredacted%5D&sysparm_query=a%3D1"
        );
        assert_eq!(
            redact_query("client_secret=s&password&grant_type=password"),
            "client_secret=%5Bredacted%5D&password=%5Bredacted%5D&grant_type=password"
        );
        assert_eq!(redact_query(""), "");
    }
}
