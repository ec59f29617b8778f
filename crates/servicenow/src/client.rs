use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::Value;
use snowbound_core::instance_url::{is_public, InstancePolicy, LOCAL_REFUSED};
use url::Url;

use crate::api_call::{logged_body, ApiCall};
use crate::auth::{Auth, API_KEY_HEADER};
use crate::classify::{
    classify_answer, classify_transport, unexpected_body, Answer, Failure, TransportKind,
};
use crate::connection::{
    check_identifier, check_sys_id, encoded_query_value, table_api_url, Connection,
};
use crate::oauth::{Bearer, TokenCache, Want};
use crate::record::Record;
use crate::FieldMap;

/// Without it, reference fields come back as `{link, value}` objects instead of strings.
pub(crate) const EXCLUDE_LINKS: (&str, &str) = ("sysparm_exclude_reference_link", "true");
/// Values are display values ("Network L2") that the instance resolves; the flag covers
/// the whole request (docs/servicenow/MAPPING.md §1.1).
const INPUT_DISPLAY_VALUE: (&str, &str) = ("sysparm_input_display_value", "true");

/// What `find_by_correlation_id` reads back: enough to adopt the record and show it.
const FOUND_FIELDS: &str = "sys_id,number,state,correlation_id,correlation_display,sys_created_on";

/// Bodies we read at most. Our queries ask for one or a few rows, so anything bigger is
/// not a Table API answer we can use; reading on would only cost memory.
const MAX_READ_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Whole call: connect, send, wait, read. ServiceNow itself cancels API transactions
    /// after 60 s, so waiting much longer than that gains nothing.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    pub user_agent: String,
    /// Allows plain `http://` and instances on loopback, private or link-local addresses
    /// (`SNOWBOUND_ALLOW_LOCAL_INSTANCES`). Off by default: see [`InstancePolicy`].
    pub allow_local_instances: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            user_agent: concat!("snowbound/", env!("CARGO_PKG_VERSION")).to_owned(),
            allow_local_instances: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not build the HTTP client for ServiceNow: {0}")]
pub struct BuildError(#[source] reqwest::Error);

/// The ServiceNow Table API client. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    policy: InstancePolicy,
    /// OAuth tokens, shared by every clone (so by every worker of a node).
    pub(crate) tokens: Arc<TokenCache>,
}

/// The classified outcome of one operation and every HTTP call it made, in order.
#[derive(Debug, Clone)]
pub struct Exchange<T> {
    pub outcome: Result<T, Failure>,
    pub calls: Vec<ApiCall>,
}

impl<T> Exchange<T> {
    /// The operation was refused before any HTTP call (bad instance URL or name).
    pub(crate) fn refused(message: String) -> Exchange<T> {
        Exchange {
            outcome: Err(Failure::Rejected {
                status: 0,
                message,
                detail: None,
            }),
            calls: Vec::new(),
        }
    }
}

/// One Table API call's classified result: the envelope's `result` on success.
pub(crate) struct Sent {
    pub outcome: Result<Value, Failure>,
    /// The Table API call (or, when no token could be had, the last token call).
    pub call: ApiCall,
    /// Calls made before it: token requests, and a first attempt refused with a token
    /// that had to be renewed.
    pub before: Vec<ApiCall>,
}

impl Sent {
    /// Every call, in order, for the API call log.
    pub(crate) fn into_calls(self) -> Vec<ApiCall> {
        let mut calls = self.before;
        calls.push(self.call);
        calls
    }

    /// A success whose `result` did not have the expected shape.
    pub(crate) fn unexpected(&self, write: bool) -> Failure {
        let body = self.call.response_body.as_deref().unwrap_or("");
        unexpected_body(write, self.call.status.unwrap_or(0), body.as_bytes())
    }
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, BuildError> {
        let policy = InstancePolicy {
            allow_local: config.allow_local_instances,
        };
        let mut builder = reqwest::Client::builder();
        if !policy.allow_local {
            // reqwest asks the resolver for names only; IP-literal hosts are checked with
            // the URL before every call.
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        let http = builder
            .use_rustls_tls()
            .https_only(!policy.allow_local)
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            // ServiceNow closes idle keep-alive connections after ~20 s (Keep-Alive:
            // timeout=20). Reusing one it is closing turns a POST into an ambiguous reset,
            // so drop ours first.
            .pool_idle_timeout(Duration::from_secs(15))
            // A redirect would turn a POST into a GET of a login page; report it instead.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(BuildError)?;
        Ok(Client {
            http,
            policy,
            tokens: Arc::default(),
        })
    }

    /// Which instance addresses this client calls; the server checks saved settings with it.
    pub fn instance_policy(&self) -> InstancePolicy {
        self.policy
    }

    /// POST `/api/now/table/{table}` with all `fields`; the created record as returned.
    pub async fn create(&self, conn: &Connection, fields: &FieldMap) -> Exchange<Record> {
        let url = match self.table_url(conn, &[], &[EXCLUDE_LINKS]) {
            Ok(url) => url,
            Err(message) => return Exchange::refused(message),
        };
        let sent = self.send(conn, Method::POST, url, Some(fields)).await;
        let outcome = match &sent.outcome {
            Ok(result) => Record::from_json(result).ok_or_else(|| sent.unexpected(true)),
            Err(failure) => Err(failure.clone()),
        };
        Exchange {
            outcome,
            calls: sent.into_calls(),
        }
    }

    /// PATCH `/api/now/table/{table}/{sys_id}` with only `fields`; the record as returned.
    pub async fn update(
        &self,
        conn: &Connection,
        sys_id: &str,
        fields: &FieldMap,
    ) -> Exchange<Record> {
        self.update_as(conn, sys_id, fields, false).await
    }

    /// [`Client::update`]; with `display_values` the values are display values the
    /// instance resolves (`sysparm_input_display_value=true`).
    pub async fn update_as(
        &self,
        conn: &Connection,
        sys_id: &str,
        fields: &FieldMap,
        display_values: bool,
    ) -> Exchange<Record> {
        let query: &[(&str, &str)] = if display_values {
            &[EXCLUDE_LINKS, INPUT_DISPLAY_VALUE]
        } else {
            &[EXCLUDE_LINKS]
        };
        let url = match check_sys_id(sys_id).and_then(|()| self.table_url(conn, &[sys_id], query)) {
            Ok(url) => url,
            Err(message) => return Exchange::refused(message),
        };
        let sent = self.send(conn, Method::PATCH, url, Some(fields)).await;
        let outcome = match &sent.outcome {
            Ok(result) => record_of(result, sys_id).ok_or_else(|| sent.unexpected(true)),
            Err(failure) => Err(failure.clone()),
        };
        Exchange {
            outcome,
            calls: sent.into_calls(),
        }
    }

    /// GET `/api/now/table/{table}/{sys_id}`: the whole record (404 → `Rejected`).
    pub async fn get(&self, conn: &Connection, sys_id: &str) -> Exchange<Record> {
        let url = match check_sys_id(sys_id)
            .and_then(|()| self.table_url(conn, &[sys_id], &[EXCLUDE_LINKS]))
        {
            Ok(url) => url,
            Err(message) => return Exchange::refused(message),
        };
        let sent = self.send(conn, Method::GET, url, None).await;
        let outcome = match &sent.outcome {
            Ok(result) => record_of(result, sys_id).ok_or_else(|| sent.unexpected(false)),
            Err(failure) => Err(failure.clone()),
        };
        Exchange {
            outcome,
            calls: sent.into_calls(),
        }
    }

    /// The record created with this `correlation_id`, if the user can see one. Used after
    /// an ambiguous create; with two matches (a duplicate already exists) the oldest wins.
    pub async fn find_by_correlation_id(
        &self,
        conn: &Connection,
        correlation_id: &str,
    ) -> Exchange<Option<Record>> {
        self.find_correlated(conn, correlation_id, None).await
    }

    /// [`Client::find_by_correlation_id`] among the records not in `closed_state`: for
    /// an incident whose Closed record was replaced by a new one with the same id.
    pub async fn find_open_by_correlation_id(
        &self,
        conn: &Connection,
        correlation_id: &str,
        closed_state: &str,
    ) -> Exchange<Option<Record>> {
        self.find_correlated(conn, correlation_id, Some(closed_state))
            .await
    }

    async fn find_correlated(
        &self,
        conn: &Connection,
        correlation_id: &str,
        closed_state: Option<&str>,
    ) -> Exchange<Option<Record>> {
        if correlation_id.trim().is_empty() {
            // `correlation_id=` would match every record without one and adopt a stranger.
            return Exchange::refused("refusing to look up an empty correlation id".into());
        }
        let not_closed = closed_state
            .map(|state| format!("^state!={}", encoded_query_value(state)))
            .unwrap_or_default();
        let query = format!(
            "correlation_id={}{not_closed}^ORDERBYsys_created_on",
            encoded_query_value(correlation_id)
        );
        let url = match self.table_url(
            conn,
            &[],
            &[
                ("sysparm_query", &query),
                ("sysparm_fields", FOUND_FIELDS),
                ("sysparm_limit", "2"),
                EXCLUDE_LINKS,
            ],
        ) {
            Ok(url) => url,
            Err(message) => return Exchange::refused(message),
        };
        let sent = self.send(conn, Method::GET, url, None).await;
        let outcome = match &sent.outcome {
            Ok(Value::Array(rows)) => {
                if rows.len() > 1 {
                    tracing::warn!(
                        table = %conn.table,
                        correlation_id,
                        "more than one ServiceNow record has this correlation id; adopting the oldest"
                    );
                }
                match rows.first() {
                    None => Ok(None),
                    Some(row) => Record::from_json(row)
                        .map(Some)
                        .ok_or_else(|| sent.unexpected(false)),
                }
            }
            Ok(_) => Err(sent.unexpected(false)),
            Err(failure) => Err(failure.clone()),
        };
        Exchange {
            outcome,
            calls: sent.into_calls(),
        }
    }

    /// One Table API call, classified, with its log entries. With OAuth it takes the
    /// cached token (fetching one if needed) and, after a 401, renews it once and retries
    /// before the refusal counts.
    pub(crate) async fn send(
        &self,
        conn: &Connection,
        method: Method,
        url: Url,
        fields: Option<&FieldMap>,
    ) -> Sent {
        let mut before = Vec::new();
        if !conn.auth.is_oauth() {
            let (outcome, call) = self.send_once(conn, &method, &url, fields, None).await;
            return Sent {
                outcome,
                call,
                before,
            };
        }
        let bearer = match self.bearer(conn, Want::Cached, &mut before).await {
            Ok(bearer) => bearer,
            Err(failure) => return Sent::without_call(failure, before, &url),
        };
        let (outcome, call) = self
            .send_once(conn, &method, &url, fields, Some(&bearer))
            .await;
        if !matches!(outcome, Err(Failure::Unauthorized { .. })) {
            return Sent {
                outcome,
                call,
                before,
            };
        }
        // The instance forgot the token or it expired early: a 401 is certain not to
        // have applied anything, so one more try with a new token is safe.
        before.push(call);
        let bearer = match self
            .bearer(conn, Want::Replacing(bearer.id), &mut before)
            .await
        {
            Ok(bearer) => bearer,
            Err(failure) => return Sent::without_call(failure, before, &url),
        };
        let (outcome, call) = self
            .send_once(conn, &method, &url, fields, Some(&bearer))
            .await;
        Sent {
            outcome,
            call,
            before,
        }
    }

    /// One HTTP call with the connection's credentials (`bearer` for OAuth). Secrets
    /// leave their `SecretString` only here, into sensitive-marked headers.
    async fn send_once(
        &self,
        conn: &Connection,
        method: &Method,
        url: &Url,
        fields: Option<&FieldMap>,
        bearer: Option<&Bearer>,
    ) -> (Result<Value, Failure>, ApiCall) {
        let write = method != Method::GET && method != Method::HEAD;
        let request_body = fields.map(|f| serde_json::to_string(f).unwrap_or_default());
        let at = Utc::now();
        let started = Instant::now();
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(ACCEPT, "application/json");
        request = match (&conn.auth, bearer) {
            (Auth::Basic { username, password }, _) => {
                request.basic_auth(username, Some(password.expose_secret()))
            }
            (Auth::ApiKey { api_key }, _) => match HeaderValue::from_str(api_key.expose_secret()) {
                Ok(mut value) => {
                    value.set_sensitive(true);
                    request.header(API_KEY_HEADER, value)
                }
                Err(_) => {
                    let refused = Failure::Rejected {
                        status: 0,
                        message: "the API key contains characters an HTTP header cannot carry"
                            .into(),
                        detail: None,
                    };
                    return (Err(refused), ApiCall::not_sent(method, url, request_body));
                }
            },
            (_, Some(bearer)) => request.bearer_auth(bearer.token.expose_secret()),
            (_, None) => request,
        };
        if let Some(body) = &request_body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }

        let mut call = ApiCall {
            at,
            method: method.to_string(),
            url: url.to_string(),
            request_body,
            status: None,
            response_body: None,
            duration_ms: 0,
            error: None,
        };
        let outcome = match request.send().await {
            Err(error) => {
                let text = error_text(&error);
                call.error = Some(text.clone());
                match refused_by_policy(&error) {
                    // Nothing was sent; retrying changes nothing until the settings do.
                    Some(refusal) => Err(Failure::Rejected {
                        status: 0,
                        message: format!("the instance URL's host {refusal}"),
                        detail: None,
                    }),
                    None => Err(classify_transport(write, transport_kind(&error), &text)),
                }
            }
            Ok(response) => {
                let status = response.status().as_u16();
                call.status = Some(status);
                let header = |name| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let retry_after = header(RETRY_AFTER);
                let location = header(LOCATION);
                let content_type = header(CONTENT_TYPE);
                match read_body(response).await {
                    Err(error) => {
                        let text = error_text(&error);
                        call.error = Some(text.clone());
                        Err(classify_transport(write, TransportKind::Body, &text))
                    }
                    Ok(body) => {
                        call.response_body = Some(logged_body(&body));
                        classify_answer(
                            write,
                            &Answer {
                                status,
                                retry_after: retry_after.as_deref(),
                                location: location.as_deref(),
                                content_type: content_type.as_deref(),
                                body: &body,
                            },
                        )
                    }
                }
            }
        };
        let outcome = outcome.map_err(|failure| failure.for_auth(conn.auth.kind()));
        call.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &outcome {
            Ok(_) => tracing::debug!(
                method = %call.method, url = %call.url, status = call.status,
                duration_ms = call.duration_ms, "ServiceNow call"
            ),
            Err(failure) => tracing::debug!(
                method = %call.method, url = %call.url, status = call.status,
                duration_ms = call.duration_ms, %failure, "ServiceNow call failed"
            ),
        }
        (outcome, call)
    }
}

impl Sent {
    /// No Table API call was made: getting a token failed. Its last call stands in.
    fn without_call(failure: Failure, mut before: Vec<ApiCall>, url: &Url) -> Sent {
        let call = before
            .pop()
            .unwrap_or_else(|| ApiCall::not_sent(&Method::POST, url, None));
        Sent {
            outcome: Err(failure),
            call,
            before,
        }
    }
}

impl Client {
    /// `{instance}/api/now/table/{conn.table}/{segments…}?{query}`, or why it can't be built.
    pub(crate) fn table_url(
        &self,
        conn: &Connection,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Url, String> {
        check_identifier("table", &conn.table)?;
        self.table_url_for(conn, &conn.table, segments, query)
    }

    pub(crate) fn table_url_for(
        &self,
        conn: &Connection,
        table: &str,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Url, String> {
        let mut path = vec![table];
        path.extend_from_slice(segments);
        table_api_url(&conn.instance_url, self.policy, &path, query)
    }
}

/// Resolves names as the system does, then drops every address that is not public, so a
/// name pointing at this machine or a private network (now, or only at connect time) is
/// never called.
struct PublicOnlyResolver;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|addr| is_public(addr.ip())).collect();
            if public.is_empty() {
                let refused: BoxError = Box::new(LocalAddressRefused { host });
                return Err(refused);
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok::<Addrs, BoxError>(addrs)
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{host} {LOCAL_REFUSED}")]
struct LocalAddressRefused {
    host: String,
}

/// The resolver refused every address of the host: a policy refusal, not a network fault.
pub(crate) fn refused_by_policy(error: &reqwest::Error) -> Option<String> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<LocalAddressRefused>() {
            return Some(refused.to_string());
        }
        source = cause.source();
    }
    None
}

/// An answer that lacks `sys_id` (field ACLs can hide fields) still describes the record
/// we addressed by sys_id.
fn record_of(result: &Value, sys_id: &str) -> Option<Record> {
    if let Some(record) = Record::from_json(result) {
        return Some(record);
    }
    let mut with_id = result.as_object()?.clone();
    with_id.insert("sys_id".into(), Value::String(sys_id.to_owned()));
    Record::from_json(&Value::Object(with_id))
}

pub(crate) async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_READ_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_READ_BODY_BYTES {
            break;
        }
    }
    Ok(body)
}

/// Connect errors come first: reqwest also reports a connect *timeout* as a timeout, and
/// nothing was sent in either case.
pub(crate) fn transport_kind(error: &reqwest::Error) -> TransportKind {
    if error.is_connect() {
        TransportKind::Connect
    } else if error.is_timeout() {
        TransportKind::Timeout
    } else if error.is_body() || error.is_decode() {
        TransportKind::Body
    } else {
        TransportKind::Interrupted
    }
}

/// reqwest's top-level message is generic ("error sending request"); the cause is in the
/// source chain.
pub(crate) fn error_text(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
