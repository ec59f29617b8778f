//! OAuth bearer tokens: `POST {instance}/oauth_token.do` with a form body (AUTH §1.2,
//! §1.3), cached in the [`Client`] so every worker of a node shares one token per
//! integration and credentials.
//!
//! One async lock per cache entry makes fetching single-flight: whoever finds the token
//! missing or due fetches it while the others wait and then use the new one. A token is
//! renewed shortly before it expires (with its refresh token when it came with one, else
//! with the original grant); after a 401 the caller asks for a token other than the one
//! refused, so a burst of refusals costs one fetch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::api_call::{logged_body, ApiCall};
use crate::auth::{Auth, TokenKey};
use crate::classify::{
    classify_transport, first_bytes, parse_retry_after, AuthRefusal, Failure, TransportKind,
};
use crate::client::{error_text, read_body, refused_by_policy, transport_kind, Client};
use crate::connection::{validate_instance_url, Connection};

const TOKEN_PATH: &str = "oauth_token.do";
/// What the instance gives when the answer has no `expires_in` (AUTH §1.2).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(1800);
/// Renewal starts this long before expiry at most (a quarter of a short lifetime).
const RENEW_AHEAD: Duration = Duration::from_secs(60);
const REDACTED: &str = "[redacted]";

/// The tokens of every connection a client has used. Entries hold a digest of the
/// credentials, never the credentials.
#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<TokenKey, Arc<tokio::sync::Mutex<Option<Token>>>>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let entries = self.slots.lock().map(|s| s.len()).unwrap_or(0);
        write!(f, "TokenCache({entries} entries)")
    }
}

struct Token {
    access: SecretString,
    refresh: Option<SecretString>,
    renew_at: Instant,
    expires_at: Instant,
    lifetime: Duration,
    id: u64,
}

/// A token to send, and which one it was (to say which one was refused).
pub(crate) struct Bearer {
    pub token: SecretString,
    pub id: u64,
    /// What it was issued for, for Test Connection.
    pub lifetime: Duration,
}

/// Which token a caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// The cached one while it is not due for renewal.
    Cached,
    /// Any but token `id`, which ServiceNow refused.
    Replacing(u64),
    /// A new one from the original grant (Test Connection).
    Fresh,
}

enum Grant<'a> {
    Original,
    Refresh(&'a SecretString),
}

struct Issued {
    access: SecretString,
    refresh: Option<SecretString>,
    lifetime: Duration,
}

impl TokenCache {
    fn slot(&self, key: TokenKey) -> Arc<tokio::sync::Mutex<Option<Token>>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if !slots.contains_key(&key) {
            // Entries of credentials no longer used would pile up: drop expired ones
            // nobody is fetching right now.
            let now = Instant::now();
            slots.retain(|_, slot| match slot.try_lock() {
                Ok(token) => token.as_ref().is_some_and(|t| t.expires_at > now),
                Err(_) => true,
            });
        }
        slots.entry(key).or_default().clone()
    }
}

impl Token {
    fn bearer(&self) -> Bearer {
        Bearer {
            token: self.access.clone(),
            id: self.id,
            lifetime: self.lifetime,
        }
    }
}

impl Client {
    /// A bearer token for `conn` (an OAuth connection); token calls made are appended to
    /// `calls`.
    pub(crate) async fn bearer(
        &self,
        conn: &Connection,
        want: Want,
        calls: &mut Vec<ApiCall>,
    ) -> Result<Bearer, Failure> {
        let slot = self.tokens.slot(conn.token_key());
        let mut held = slot.lock().await;
        let now = Instant::now();
        if let Some(token) = held.as_ref() {
            let usable = now < token.renew_at;
            match want {
                Want::Cached if usable => return Ok(token.bearer()),
                Want::Replacing(refused) if usable && token.id != refused => {
                    return Ok(token.bearer())
                }
                _ => {}
            }
        }
        // Still valid, only due: if renewing fails for now, it serves until it expires.
        let fallback = held
            .as_ref()
            .filter(|t| want == Want::Cached && now < t.expires_at)
            .map(Token::bearer);
        let refresh = held
            .as_ref()
            .filter(|_| want != Want::Fresh)
            .and_then(|t| t.refresh.clone());
        let started = Instant::now();
        let mut issued = None;
        if let Some(refresh) = &refresh {
            match self
                .request_token(conn, Grant::Refresh(refresh), calls)
                .await
            {
                Ok(answer) => issued = Some(answer),
                // Refused (expired or revoked): the original grant decides.
                Err(Failure::Unauthorized { .. }) => {}
                Err(failure) => return fallback.ok_or(failure),
            }
        }
        let issued = match issued {
            Some(issued) => issued,
            None => match self.request_token(conn, Grant::Original, calls).await {
                Ok(issued) => issued,
                Err(failure) => {
                    if matches!(failure, Failure::Unauthorized { .. }) {
                        *held = None;
                        return Err(failure);
                    }
                    return fallback.ok_or(failure);
                }
            },
        };
        let ahead = RENEW_AHEAD.min(issued.lifetime / 4);
        let token = Token {
            access: issued.access,
            // A refresh answer may leave the refresh token out: the old one still holds.
            refresh: issued.refresh.or(refresh),
            renew_at: started + issued.lifetime - ahead,
            expires_at: started + issued.lifetime,
            lifetime: issued.lifetime,
            id: self.tokens.next_id.fetch_add(1, Ordering::Relaxed),
        };
        let bearer = token.bearer();
        *held = Some(token);
        Ok(bearer)
    }

    /// One token request, classified, with its (redacted) log entry.
    async fn request_token(
        &self,
        conn: &Connection,
        grant: Grant<'_>,
        calls: &mut Vec<ApiCall>,
    ) -> Result<Issued, Failure> {
        let refused = |message: String| Failure::Rejected {
            status: 0,
            message,
            detail: None,
        };
        validate_instance_url(&conn.instance_url, self.instance_policy()).map_err(refused)?;
        let mut url = conn.instance_url.clone();
        url.path_segments_mut()
            .map_err(|()| refused("the instance URL cannot be a base".into()))?
            .pop_if_empty()
            .push(TOKEN_PATH);
        let params = token_params(&conn.auth, &grant).ok_or_else(|| {
            refused("OAuth tokens are only fetched for the OAuth authentication types".into())
        })?;
        let form = |shown: &dyn Fn(&Param) -> String| {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for param in &params {
                form.append_pair(param.name, &shown(param));
            }
            form.finish()
        };
        let body = form(&|p| p.value.expose_secret().to_owned());
        let mut call = ApiCall {
            at: Utc::now(),
            method: "POST".into(),
            url: url.to_string(),
            request_body: Some(form(&|p| {
                if p.secret {
                    REDACTED.to_owned()
                } else {
                    p.value.expose_secret().to_owned()
                }
            })),
            status: None,
            response_body: None,
            duration_ms: 0,
            error: None,
        };
        let started = Instant::now();
        let request = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body);
        let outcome = match request.send().await {
            Err(error) => {
                let text = error_text(&error);
                call.error = Some(text.clone());
                Err(match refused_by_policy(&error) {
                    Some(refusal) => refused(format!("the instance URL's host {refusal}")),
                    // A token request changes nothing on the instance: never ambiguous.
                    None => classify_transport(false, transport_kind(&error), &text),
                })
            }
            Ok(response) => {
                let status = response.status().as_u16();
                call.status = Some(status);
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match read_body(response).await {
                    Err(error) => {
                        let text = error_text(&error);
                        call.error = Some(text.clone());
                        Err(classify_transport(false, TransportKind::Body, &text))
                    }
                    Ok(body) => {
                        call.response_body = Some(redacted_answer(&body, &conn.auth));
                        classify_token_answer(
                            status,
                            retry_after.as_deref(),
                            &body,
                            &conn.auth,
                            &grant,
                        )
                    }
                }
            }
        };
        call.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &outcome {
            Ok(_) => tracing::debug!(url = %call.url, status = call.status, "OAuth token obtained"),
            Err(failure) => {
                tracing::debug!(url = %call.url, status = call.status, %failure, "OAuth token request failed")
            }
        }
        calls.push(call);
        outcome
    }
}

struct Param {
    name: &'static str,
    value: SecretString,
    secret: bool,
}

fn token_params(auth: &Auth, grant: &Grant<'_>) -> Option<Vec<Param>> {
    let plain = |name, value: &str| Param {
        name,
        value: SecretString::from(value.to_owned()),
        secret: false,
    };
    let secret = |name, value: &SecretString| Param {
        name,
        value: value.clone(),
        secret: true,
    };
    let (client_id, client_secret) = match auth {
        Auth::OAuthClientCredentials {
            client_id,
            client_secret,
        }
        | Auth::OAuthPassword {
            client_id,
            client_secret,
            ..
        } => (client_id, client_secret),
        _ => return None,
    };
    let mut params = match (grant, auth) {
        (Grant::Refresh(token), _) => vec![
            plain("grant_type", "refresh_token"),
            secret("refresh_token", token),
        ],
        (
            Grant::Original,
            Auth::OAuthPassword {
                username, password, ..
            },
        ) => vec![
            plain("grant_type", "password"),
            plain("username", username),
            secret("password", password),
        ],
        (Grant::Original, _) => vec![plain("grant_type", "client_credentials")],
    };
    params.push(plain("client_id", client_id));
    params.push(secret("client_secret", client_secret));
    Some(params)
}

fn classify_token_answer(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    auth: &Auth,
    grant: &Grant<'_>,
) -> Result<Issued, Failure> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    // The body may hold tokens; what a message quotes of it is redacted.
    let said = || first_bytes(redacted_answer(body, auth).as_bytes());
    match status {
        200..=299 => {
            let Some(access) = field("access_token") else {
                return Err(Failure::Transient {
                    ambiguous: false,
                    message: format!(
                        "oauth_token.do answered HTTP {status} without an access token: {}",
                        said()
                    ),
                });
            };
            let lifetime = json
                .as_ref()
                .and_then(|j| j.get("expires_in"))
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()))
                .filter(|s| *s > 0)
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_LIFETIME);
            Ok(Issued {
                access: SecretString::from(access),
                refresh: field("refresh_token").map(SecretString::from),
                lifetime,
            })
        }
        429 => Err(Failure::RateLimited {
            retry_after: retry_after.and_then(|v| parse_retry_after(v, Utc::now())),
            message: format!("oauth_token.do answered HTTP 429: {}", said()),
        }),
        408 | 500..=599 => Err(Failure::Transient {
            ambiguous: false,
            message: format!("oauth_token.do answered HTTP {status}: {}", said()),
        }),
        _ => {
            let error = field("error").unwrap_or_default();
            let description = field("error_description").unwrap_or_default();
            let cause = if error == "unsupported_grant_type" {
                AuthRefusal::GrantNotEnabled {
                    client_credentials: matches!(
                        (grant, auth),
                        (Grant::Original, Auth::OAuthClientCredentials { .. })
                    ),
                }
            } else if status == 401 || description == "access_denied" {
                AuthRefusal::OAuthClient {
                    password_grant: matches!(auth, Auth::OAuthPassword { .. }),
                }
            } else {
                AuthRefusal::TokenRequest
            };
            let message = if error.is_empty() {
                format!("oauth_token.do answered HTTP {status}: {}", said())
            } else {
                format!("oauth_token.do answered HTTP {status} {error}: {description}")
            };
            Err(Failure::Unauthorized { message, cause })
        }
    }
}

/// A token answer as the API call log keeps it: tokens replaced in JSON, and any secret
/// of the connection scrubbed from whatever else came back.
fn redacted_answer(body: &[u8], auth: &Auth) -> String {
    if let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) {
        for name in ["access_token", "refresh_token", "id_token"] {
            if let Some(value) = fields.get_mut(name) {
                *value = Value::String(REDACTED.into());
            }
        }
        return Value::Object(fields).to_string();
    }
    let mut text = logged_body(body);
    for secret in auth.secrets() {
        let secret = secret.expose_secret();
        if !secret.is_empty() {
            text = text.replace(secret, REDACTED);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oauth() -> Auth {
        Auth::OAuthPassword {
            client_id: "client".into(),
            client_secret: SecretString::from("cl1ent-s3cret"),
            username: "snowbound".into(),
            password: SecretString::from("us3r-pa55"),
        }
    }

    #[test]
    fn token_answers_are_logged_without_tokens_or_secrets() {
        let body = br#"{"access_token":"AAA-token","refresh_token":"RRR-token","expires_in":1800,"token_type":"Bearer"}"#;
        let logged = redacted_answer(body, &oauth());
        assert!(
            !logged.contains("AAA") && !logged.contains("RRR"),
            "{logged}"
        );
        assert!(logged.contains("1800"));
        let page = b"<html>bad login for cl1ent-s3cret / us3r-pa55</html>";
        let logged = redacted_answer(page, &oauth());
        assert!(
            !logged.contains("s3cret") && !logged.contains("pa55"),
            "{logged}"
        );
    }

    #[test]
    fn answers_are_classified_for_the_grant() {
        let cc = Auth::OAuthClientCredentials {
            client_id: "c".into(),
            client_secret: SecretString::from("s"),
        };
        let unsupported = br#"{"error":"unsupported_grant_type","error_description":"Unsupported grant type: client_credentials"}"#;
        let failure = classify_token_answer(400, None, unsupported, &cc, &Grant::Original)
            .err()
            .unwrap();
        assert!(matches!(
            failure,
            Failure::Unauthorized {
                cause: AuthRefusal::GrantNotEnabled {
                    client_credentials: true
                },
                ..
            }
        ));
        let denied = br#"{"error":"server_error","error_description":"access_denied"}"#;
        let failure = classify_token_answer(401, None, denied, &oauth(), &Grant::Original)
            .err()
            .unwrap();
        assert!(matches!(
            failure,
            Failure::Unauthorized {
                cause: AuthRefusal::OAuthClient {
                    password_grant: true
                },
                ..
            }
        ));
        let issued = classify_token_answer(
            200,
            None,
            br#"{"access_token":"t","expires_in":"60"}"#,
            &cc,
            &Grant::Original,
        )
        .ok()
        .unwrap();
        assert_eq!(issued.lifetime, Duration::from_secs(60));
        assert!(issued.refresh.is_none());
        assert!(matches!(
            classify_token_answer(503, None, b"", &cc, &Grant::Original),
            Err(Failure::Transient {
                ambiguous: false,
                ..
            })
        ));
    }

    #[test]
    fn token_requests_carry_the_grant_in_the_body() {
        let names = |grant| -> Vec<&'static str> {
            token_params(&oauth(), &grant)
                .unwrap()
                .iter()
                .map(|p| p.name)
                .collect()
        };
        assert_eq!(
            names(Grant::Original),
            [
                "grant_type",
                "username",
                "password",
                "client_id",
                "client_secret"
            ]
        );
        let refresh = SecretString::from("r");
        assert_eq!(
            names(Grant::Refresh(&refresh)),
            ["grant_type", "refresh_token", "client_id", "client_secret"]
        );
        let basic = Auth::Basic {
            username: "u".into(),
            password: SecretString::from("p"),
        };
        assert!(token_params(&basic, &Grant::Original).is_none());
    }
}
