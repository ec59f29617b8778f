//! Turns whatever came back from ServiceNow (or didn't) into a [`Failure`] class. Callers
//! act on the class only, so every rule about what an answer *means* lives here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::auth::AuthKind;

/// Why a call did not succeed, classified by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// HTTP 429. `retry_after` comes from the `Retry-After` header (`None` when absent).
    #[error("ServiceNow rate limit exceeded: {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// Worth retrying: 5xx, timeout, connect error, non-JSON 2xx, cancelled transaction.
    /// `ambiguous` = the request may have been applied (sent, no definite answer).
    #[error("{message}")]
    Transient { ambiguous: bool, message: String },
    /// ServiceNow said no (400/403/404/…): retrying the same request will not help.
    /// `status` 0 means Snowbound refused to send it (invalid instance URL or name).
    #[error("{}", rejected_text(*.status, .message, .detail))]
    Rejected {
        status: u16,
        message: String,
        detail: Option<String>,
    },
    /// The credentials were refused: a 401 from the Table API, or the token endpoint
    /// refusing to issue a token. `message` is what ServiceNow said, `cause` what it
    /// means for the person fixing it.
    #[error("ServiceNow did not accept the credentials: {message}")]
    Unauthorized { message: String, cause: AuthRefusal },
}

/// What a refusal of the credentials means, by how the integration authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// Basic: wrong username or password, or an inactive or locked account.
    BasicCredentials,
    /// Basic refused by the Basic authentication restriction ("User is not
    /// authenticated", AUTH §1.1).
    BasicRestricted,
    /// `oauth_token.do` refused the client id or secret (with the password grant: or
    /// the user's name or password).
    OAuthClient { password_grant: bool },
    /// `oauth_token.do` does not allow the grant (client credentials: the property is off).
    GrantNotEnabled { client_credentials: bool },
    /// Any other refusal of a token request.
    TokenRequest,
    /// A freshly obtained bearer token was refused as well.
    BearerToken,
    /// The API key was refused; `policy`: ServiceNow said no REST API Access Policy
    /// lets it in.
    ApiKey { policy: bool },
}

/// Where the setup steps for each type are, for messages.
const SETUP_DOC: &str = "docs/SERVICENOW_SETUP.md";

impl AuthRefusal {
    /// A 401 of the Table API to a call made with `kind`.
    pub(crate) fn of_table_api(kind: AuthKind, message: &str) -> AuthRefusal {
        match kind {
            // The restriction's words differ from a wrong password's ("User Not
            // Authenticated") only in case.
            AuthKind::Basic if message.starts_with("User is not authenticated") => {
                AuthRefusal::BasicRestricted
            }
            AuthKind::Basic => AuthRefusal::BasicCredentials,
            AuthKind::OAuthClientCredentials | AuthKind::OAuthPassword => AuthRefusal::BearerToken,
            AuthKind::ApiKey => AuthRefusal::ApiKey {
                policy: message.contains("REST API Policy") || message.contains("Token Based Auth"),
            },
        }
    }

    fn user_message(self) -> String {
        match self {
            AuthRefusal::BasicCredentials => "ServiceNow did not accept the username or password \
                 of the integration (HTTP 401). Check both in the integration settings; the \
                 ServiceNow account must be active. If they are right, the instance may \
                 restrict Basic authentication: make the account Web service access only, give \
                 it the role snc_basic_auth_api_access, or switch the integration to OAuth."
                .to_owned(),
            AuthRefusal::BasicRestricted => format!(
                "ServiceNow refused Basic authentication for the integration user (HTTP 401 \
                 \"User is not authenticated\"): the instance enforces the Basic authentication \
                 restriction. Mark the account Web service access only, give it the role \
                 snc_basic_auth_api_access, or switch the integration to OAuth ({SETUP_DOC})."
            ),
            AuthRefusal::OAuthClient {
                password_grant: false,
            } => format!(
                "ServiceNow refused the OAuth client id or client secret (oauth_token.do \
                 answered access_denied). Check both against the instance's OAuth application \
                 (Machine Identity Console, or System OAuth > Application Registry), and that \
                 its OAuth Application User is set and active ({SETUP_DOC})."
            ),
            AuthRefusal::OAuthClient {
                password_grant: true,
            } => format!(
                "ServiceNow refused the OAuth token request (oauth_token.do answered \
                 access_denied): the client id or client secret, or the integration user's \
                 name or password, is wrong, or the user is inactive. Check them against the \
                 OAuth application registry entry and the user ({SETUP_DOC})."
            ),
            AuthRefusal::GrantNotEnabled {
                client_credentials: true,
            } => format!(
                "ServiceNow does not allow the OAuth client credentials grant on this instance \
                 (unsupported_grant_type). An admin (role oauth_admin) must create the system \
                 property glide.oauth.inbound.client.credential.grant_type.enabled with the \
                 value true (Washington DC release or later) ({SETUP_DOC})."
            ),
            AuthRefusal::GrantNotEnabled {
                client_credentials: false,
            } => format!(
                "ServiceNow does not allow the OAuth password grant on this instance \
                 (unsupported_grant_type). Use the client credentials grant or another type \
                 ({SETUP_DOC})."
            ),
            AuthRefusal::TokenRequest => format!(
                "ServiceNow refused to issue an OAuth token. Check the instance URL and the \
                 OAuth settings of the integration ({SETUP_DOC})."
            ),
            AuthRefusal::BearerToken => "ServiceNow refused a freshly obtained OAuth token \
                 (HTTP 401). The ServiceNow user the token acts as (the OAuth Application User, \
                 or the integration user) may be inactive or locked, or the OAuth application's \
                 token restrictions refuse the Table API."
                .to_owned(),
            AuthRefusal::ApiKey { policy: true } => format!(
                "ServiceNow refused the API key: no REST API Access Policy lets API keys into \
                 the Table API. An admin must create a REST API Access Policy for the Table API \
                 (one per API version) with an inbound authentication profile of type API Key \
                 ({SETUP_DOC})."
            ),
            AuthRefusal::ApiKey { policy: false } => format!(
                "ServiceNow refused the API key (HTTP 401): it is wrong or expired, or its user \
                 is inactive. Check the REST API Key record, and that a REST API Access Policy \
                 for the Table API with an API Key authentication profile exists ({SETUP_DOC})."
            ),
        }
    }
}

fn rejected_text(status: u16, message: &str, detail: &Option<String>) -> String {
    let head = if status == 0 {
        "Snowbound did not send the request".to_owned()
    } else {
        format!("ServiceNow rejected the request (HTTP {status})")
    };
    match detail {
        Some(detail) => format!("{head}: {message}: {}", one_line(detail)),
        None => format!("{head}: {message}"),
    }
}

impl Failure {
    /// A Table API 401 read for the way the call authenticated.
    pub(crate) fn for_auth(self, kind: AuthKind) -> Failure {
        match self {
            Failure::Unauthorized { message, .. } => {
                let said = message.strip_prefix("HTTP 401: ").unwrap_or(&message);
                let cause = AuthRefusal::of_table_api(kind, said);
                Failure::Unauthorized { message, cause }
            }
            other => other,
        }
    }

    /// The request may have been applied although no success was seen: after a create,
    /// look the record up by correlation id before creating it again.
    pub fn is_ambiguous(&self) -> bool {
        matches!(
            self,
            Failure::Transient {
                ambiguous: true,
                ..
            }
        )
    }

    /// The HTTP status ServiceNow answered with, when the class implies one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::RateLimited { .. } => Some(429),
            Failure::Unauthorized { .. } => Some(401),
            Failure::Rejected { status, .. } if *status != 0 => Some(*status),
            _ => None,
        }
    }

    /// A sentence for the people running the integration: what happened and what to do.
    /// `table` is the integration's configured table.
    pub fn user_message(&self, table: &str) -> String {
        match self {
            Failure::RateLimited {
                retry_after,
                message,
            } => match retry_after {
                Some(wait) => format!(
                    "ServiceNow is rate limiting the integration user ({message}); \
                     Snowbound waits {} s before calling it again.",
                    wait.as_secs()
                ),
                None => format!(
                    "ServiceNow is rate limiting the integration user ({message}); \
                     Snowbound waits before calling it again."
                ),
            },
            Failure::Transient {
                ambiguous: true,
                message,
            } => format!(
                "ServiceNow gave no definite answer ({message}). The change may have been \
                 applied, so Snowbound checks before repeating it."
            ),
            Failure::Transient { message, .. } => format!(
                "ServiceNow could not be reached or is temporarily unavailable ({message}); \
                 Snowbound retries automatically."
            ),
            Failure::Unauthorized { cause, .. } => cause.user_message(),
            Failure::Rejected {
                status,
                message,
                detail,
            } => rejected_user_message(*status, message, detail.as_deref(), table),
        }
    }
}

fn rejected_user_message(status: u16, message: &str, detail: Option<&str>, table: &str) -> String {
    let detail_text = detail.unwrap_or("");
    let both = format!("{message} {detail_text}");
    if status == 0 {
        return format!("Snowbound did not send the request: {message}.");
    }
    if both.contains("ACL Exception Insert Failed") {
        return format!(
            "ServiceNow refused to create the record: the integration user lacks create rights \
             on table {table} (ACL). Ask the ServiceNow admin for the itil role or a create ACL."
        );
    }
    if both.contains("ACL Exception Update Failed") {
        return format!(
            "ServiceNow refused to update the record: the integration user lacks write rights \
             on table {table} (ACL). Ask the ServiceNow admin for the itil role or a write ACL."
        );
    }
    if both.contains("Data Policy Exception") {
        return match mandatory_fields(detail_text) {
            Some(fields) => format!(
                "ServiceNow's data policy refused the change: these fields are mandatory: \
                 {fields}. Check the close code and close notes settings of the integration \
                 (the close code must be one of the instance's choices)."
            ),
            None => format!(
                "ServiceNow's data policy refused the change: {}.",
                one_line(detail_text)
            ),
        };
    }
    if message.starts_with("Invalid table") {
        return format!(
            "Table {table} does not exist on this ServiceNow instance ({message}). Check the \
             table name in the integration settings."
        );
    }
    if message.contains("Insufficient rights to query records") {
        return format!(
            "The integration user may not read table {table} ({message}). Ask the ServiceNow \
             admin for read rights on it."
        );
    }
    if status == 404 && message.contains("No Record found") {
        return format!(
            "The ServiceNow record was not found in table {table}: it was deleted, or the \
             integration user may not see it (ACL). Snowbound does not create it again on \
             its own."
        );
    }
    let said = match detail {
        Some(detail) => format!("{message}: {}", one_line(detail)),
        None => message.to_owned(),
    };
    if status == 403 {
        return format!(
            "ServiceNow refused the operation on table {table} (HTTP 403: {said}). The \
             integration user may lack rights, or a business rule blocked it."
        );
    }
    format!("ServiceNow rejected the request on table {table} (HTTP {status}: {said}).")
}

/// `Data Policy Exception: \n\tThe following fields are mandatory: Resolution code, Close
/// notes` → `Resolution code, Close notes`.
pub(crate) fn mandatory_fields(detail: &str) -> Option<String> {
    let (_, after) = detail.split_once("mandatory:")?;
    let fields: Vec<&str> = after
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .collect();
    (!fields.is_empty()).then(|| fields.join(", "))
}

/// What arrived on the wire, before any interpretation.
pub(crate) struct Answer<'a> {
    pub status: u16,
    pub retry_after: Option<&'a str>,
    pub location: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// Classifies a complete HTTP answer. On success returns the envelope's `result` value.
/// `write` = the request was a POST/PATCH, which a 5xx or an unreadable success may have
/// applied.
pub(crate) fn classify_answer(write: bool, answer: &Answer<'_>) -> Result<Value, Failure> {
    let status = answer.status;
    if write && status != 408 && !(200..=299).contains(&status) && !speaks_table_api(answer.body) {
        // Not ServiceNow's words: a proxy, WAF or SSO page in front of the instance, which
        // may have passed the write on before answering. Only a lookup tells.
        return Err(not_servicenow_after_write(answer));
    }
    match status {
        200..=299 => classify_success(write, answer),
        401 => {
            let said = envelope_text(answer.body).unwrap_or_else(|| first_bytes(answer.body));
            // Basic's reading; the client reads it again for the way it authenticated.
            let cause = AuthRefusal::of_table_api(AuthKind::Basic, &said);
            Err(Failure::Unauthorized {
                message: format!("HTTP 401: {said}"),
                cause,
            })
        }
        429 => Err(Failure::RateLimited {
            retry_after: answer
                .retry_after
                .and_then(|v| parse_retry_after(v, Utc::now())),
            message: envelope_text(answer.body).unwrap_or_else(|| {
                format!("HTTP 429 Too Many Requests {}", first_bytes(answer.body))
            }),
        }),
        // The server gave up waiting for our request, so it never ran.
        408 => Err(Failure::Transient {
            ambiguous: false,
            message: format!(
                "ServiceNow answered HTTP 408 (request timeout): {}",
                said(answer.body)
            ),
        }),
        500..=599 => {
            let mut message = format!("ServiceNow answered HTTP {status}: {}", said(answer.body));
            if write {
                message.push_str(" (the change may have been applied)");
            }
            Err(Failure::Transient {
                ambiguous: write,
                message,
            })
        }
        300..=399 => Err(Failure::Rejected {
            status,
            message: format!(
                "ServiceNow answered with a redirect to {}; the instance URL should be the \
                 instance's own https:// address",
                answer.location.unwrap_or("(no Location header)")
            ),
            detail: None,
        }),
        _ => Err(match parse_envelope(answer.body) {
            Some((message, detail)) => Failure::Rejected {
                status,
                message,
                detail,
            },
            None => Failure::Rejected {
                status,
                message: format!(
                    "HTTP {status} with an unexpected body: {}",
                    first_bytes(answer.body)
                ),
                detail: None,
            },
        }),
    }
}

fn classify_success(write: bool, answer: &Answer<'_>) -> Result<Value, Failure> {
    let status = answer.status;
    let parsed: Option<Value> = serde_json::from_slice(answer.body).ok();
    let cancelled = || Failure::Transient {
        ambiguous: write,
        message: format!(
            "ServiceNow cancelled the transaction (maximum execution time exceeded) after \
             answering HTTP {status}"
        ),
    };
    let Some(json) = parsed else {
        // KB1297438: the quota rule appends an error object to a possibly partial body,
        // which makes the whole body invalid JSON.
        if String::from_utf8_lossy(answer.body).contains("Transaction cancelled") {
            return Err(cancelled());
        }
        if write {
            return Err(not_servicenow_after_write(answer));
        }
        if looks_like_html(answer) {
            // The Table API never answers in HTML: something in front of it did (a
            // hibernating developer instance, a login or proxy page). Harmless for a read.
            return Err(Failure::Transient {
                ambiguous: false,
                message: format!(
                    "ServiceNow answered HTTP {status} with an HTML page instead of JSON (a \
                     hibernating developer instance does this; wake it up in the developer \
                     portal): {}",
                    first_bytes(answer.body)
                ),
            });
        }
        return Err(Failure::Transient {
            ambiguous: write,
            message: format!(
                "ServiceNow answered HTTP {status} with a body that is not JSON: {}",
                first_bytes(answer.body)
            ),
        });
    };
    if let Some((message, detail)) = parse_envelope(answer.body) {
        if message.contains("Transaction cancelled") {
            return Err(cancelled());
        }
        return Err(Failure::Transient {
            ambiguous: write,
            message: format!(
                "ServiceNow answered HTTP {status} with an error: {}",
                join_detail(&message, detail.as_deref())
            ),
        });
    }
    match json {
        Value::Object(mut map) if map.contains_key("result") => {
            Ok(map.remove("result").unwrap_or(Value::Null))
        }
        _ => Err(unexpected_body(write, status, answer.body)),
    }
}

/// The Table API always answers with an object holding `result` or `error`; anything
/// else came from something else (a proxy page, or a service that is no ServiceNow).
pub fn speaks_table_api(body: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<Value>(body),
        Ok(Value::Object(map)) if map.contains_key("result") || map.contains_key("error")
    )
}

fn not_servicenow_after_write(answer: &Answer<'_>) -> Failure {
    let status = answer.status;
    let what = if looks_like_html(answer) {
        "an HTML page"
    } else {
        "a body"
    };
    let redirect = match answer.location {
        Some(target) if (300..=399).contains(&status) => format!(" redirecting to {target}"),
        _ => String::new(),
    };
    Failure::Transient {
        ambiguous: true,
        message: format!(
            "ServiceNow answered HTTP {status}{redirect} with {what} that is not the Table              API's JSON (a proxy, firewall or single sign-on page in front of the instance,              or a hibernating developer instance); the change may have been applied: {}",
            first_bytes(answer.body)
        ),
    }
}

/// A success whose JSON lacks what the Table API always sends.
pub(crate) fn unexpected_body(write: bool, status: u16, body: &[u8]) -> Failure {
    Failure::Transient {
        ambiguous: write,
        message: format!(
            "ServiceNow answered HTTP {status} with unexpected JSON: {}",
            first_bytes(body)
        ),
    }
}

fn looks_like_html(answer: &Answer<'_>) -> bool {
    let declared = answer
        .content_type
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("html"));
    let sniffed = String::from_utf8_lossy(answer.body)
        .trim_start()
        .starts_with('<');
    declared || sniffed
}

/// `{"error":{"message":…,"detail":…},"status":"failure"}` → (message, detail). Lenient:
/// a non-string message or detail is kept as its JSON text; null/empty detail is `None`.
pub(crate) fn parse_envelope(body: &[u8]) -> Option<(String, Option<String>)> {
    let json: Value = serde_json::from_slice(body).ok()?;
    let error = json.get("error")?;
    let as_text = |v: &Value| match v {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    match error {
        Value::Object(fields) => {
            let message = fields.get("message").and_then(as_text);
            let detail = fields.get("detail").and_then(as_text);
            Some((
                message.unwrap_or_else(|| "ServiceNow returned an error without a message".into()),
                detail,
            ))
        }
        other => as_text(other).map(|m| (m, None)),
    }
}

fn envelope_text(body: &[u8]) -> Option<String> {
    parse_envelope(body).map(|(message, detail)| join_detail(&message, detail.as_deref()))
}

/// What ServiceNow said: the envelope when there is one, else the first bytes.
fn said(body: &[u8]) -> String {
    envelope_text(body).unwrap_or_else(|| first_bytes(body))
}

fn join_detail(message: &str, detail: Option<&str>) -> String {
    match detail {
        Some(detail) => format!("{message}: {}", one_line(detail)),
        None => message.to_owned(),
    }
}

/// ServiceNow details contain `\n\t`; log lines and UI sentences read better on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The start of a body for error messages: enough to recognise an HTML page or a proxy
/// error, short enough for a log line.
pub(crate) fn first_bytes(body: &[u8]) -> String {
    const SHOWN: usize = 200;
    if body.is_empty() {
        return "(empty body)".to_owned();
    }
    let text = one_line(&String::from_utf8_lossy(body));
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `Retry-After` is delta-seconds (what ServiceNow sends) or an HTTP date.
pub(crate) fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// What went wrong below HTTP, as far as it tells whether the request reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportKind {
    /// Before anything was sent: DNS, refused, TLS handshake, connect timeout.
    Connect,
    /// The overall timeout fired after the connection was made.
    Timeout,
    /// Sending or waiting for the answer failed (reset, closed mid-way).
    Interrupted,
    /// The status arrived but the body could not be read.
    Body,
}

pub(crate) fn classify_transport(write: bool, kind: TransportKind, error: &str) -> Failure {
    let maybe_applied = if write {
        " (the change may have been applied)"
    } else {
        ""
    };
    match kind {
        TransportKind::Connect => Failure::Transient {
            ambiguous: false,
            message: format!("could not connect to ServiceNow: {error}"),
        },
        TransportKind::Timeout => Failure::Transient {
            ambiguous: write,
            message: format!("ServiceNow did not answer in time: {error}{maybe_applied}"),
        },
        TransportKind::Interrupted => Failure::Transient {
            ambiguous: write,
            message: format!("the connection to ServiceNow broke: {error}{maybe_applied}"),
        },
        TransportKind::Body => Failure::Transient {
            ambiguous: write,
            message: format!("reading ServiceNow's answer failed: {error}{maybe_applied}"),
        },
    }
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
