//! Accept loop, shared state and the per-request pipeline (latency, faults, log).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

use crate::auth::RateWindow;
use crate::business_rules::{BusinessRule, DeliveryLog};
use crate::errors::{SnError, MAX_BODY};
use crate::faults::{FaultAction, FaultSet, ReceivedRequest, RequestLog};
use crate::identity::AuthState;
use crate::semaphores::Pool;
use crate::store::Data;
use crate::{control, html, lock, oauth, table_api, EmulatorConfig};

pub(crate) struct Control {
    pub faults: FaultSet,
    pub log: RequestLog,
    pub latency: Duration,
    pub rate: HashMap<String, RateWindow>,
    pub business_rules: Vec<BusinessRule>,
    pub deliveries: DeliveryLog,
}

pub(crate) struct Shared {
    pub config: EmulatorConfig,
    data: Mutex<Data>,
    control: Mutex<Control>,
    /// Users, OAuth clients and tokens, API keys, properties. Lock order: never taken
    /// while `data` is held.
    auth: Mutex<AuthState>,
    /// `None`: requests are never refused for concurrency.
    semaphores: Option<Pool>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    pub fn data(&self) -> MutexGuard<'_, Data> {
        lock(&self.data)
    }

    pub fn control(&self) -> MutexGuard<'_, Control> {
        lock(&self.control)
    }

    pub fn auth(&self) -> MutexGuard<'_, AuthState> {
        lock(&self.auth)
    }

    /// A snapshot of the users (they can change through the control API).
    pub fn users(&self) -> Vec<crate::User> {
        self.auth().users.clone()
    }

    pub fn reset(&self) {
        let auth = AuthState::from_config(&self.config);
        let fresh = Data::new(&auth.users, &self.config.extra_tables);
        *self.auth() = auth;
        *self.data() = fresh;
        let mut c = self.control();
        c.faults.clear();
        c.log = RequestLog::default();
        c.latency = self.config.latency;
        c.rate.clear();
        c.business_rules = self.config.business_rules.clone();
        c.deliveries = DeliveryLog::default();
    }

    /// Resolves when the server is told to stop (or its handle is gone).
    pub async fn stopped(&self) {
        let mut stop = self.stop.clone();
        let _ = stop.wait_for(|s| *s).await;
    }
}

/// Lets a handler close its own connection without answering.
#[derive(Clone)]
struct ConnKill(Arc<Notify>);

pub(crate) struct ServerHandle {
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl ServerHandle {
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = lock(&self.task).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn new_shared(config: EmulatorConfig, stop: watch::Receiver<bool>) -> Arc<Shared> {
    let auth = AuthState::from_config(&config);
    Arc::new(Shared {
        data: Mutex::new(Data::new(&auth.users, &config.extra_tables)),
        control: Mutex::new(Control {
            faults: FaultSet::default(),
            log: RequestLog::default(),
            latency: config.latency,
            rate: HashMap::new(),
            business_rules: config.business_rules.clone(),
            deliveries: DeliveryLog::default(),
        }),
        auth: Mutex::new(auth),
        semaphores: config.api_semaphores.map(Pool::new),
        config,
        stop,
    })
}

pub(crate) fn spawn(listener: TcpListener, config: EmulatorConfig) -> (Arc<Shared>, ServerHandle) {
    let (tx, rx) = watch::channel(false);
    let shared = new_shared(config, rx);
    let task = tokio::spawn(run(listener, shared.clone()));
    (
        shared,
        ServerHandle {
            stop: tx,
            task: Mutex::new(Some(task)),
        },
    )
}

/// Serves the emulator on `listener` until the process ends. This is what
/// `snowbound emulator --listen …` calls.
pub async fn serve(listener: TcpListener, config: EmulatorConfig) -> std::io::Result<()> {
    serve_with_shutdown(listener, config, std::future::pending()).await
}

/// Serves until `shutdown` resolves (e.g. `tokio::signal::ctrl_c()`), then closes all
/// connections.
pub async fn serve_with_shutdown(
    listener: TcpListener,
    config: EmulatorConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (tx, rx) = watch::channel(false);
    let shared = new_shared(config, rx);
    tokio::select! {
        _ = run(listener, shared) => {}
        _ = shutdown => {}
    }
    let _ = tx.send(true);
    Ok(())
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", axum::routing::get(html::page))
        .nest("/emulator", control::router())
        .fallback(pipeline)
        .with_state(shared)
}

async fn run(listener: TcpListener, shared: Arc<Shared>) {
    let app = router(shared.clone());
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Usually fd exhaustion; back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shared.stopped() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let k = kill.clone();
            let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnKill(k.clone()));
                app.clone().oneshot(req.map(Body::new))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = kill.notified() => {}
                _ = shared.stopped() => {}
            }
        });
    }
}

fn body_for_log(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Every request outside `/emulator` and `/` goes through here: base latency, faults,
/// the Table API or the token endpoint, then the request log. Secrets (token form
/// fields, API keys in the query) are redacted before anything is logged.
async fn pipeline(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let received_at = chrono::Utc::now();
    let kill = req.extensions().get::<ConnKill>().cloned();
    let (parts, body) = req.into_parts();
    let method = table_api::effective_method(&parts);
    let path = parts.uri.path().to_string();
    let query = oauth::redact_query(parts.uri.query().unwrap_or(""));
    let is_token = path == oauth::TOKEN_PATH;
    let mut entry = ReceivedRequest {
        method: method.to_string(),
        path: path.clone(),
        query,
        body: Value::Null,
        status: None,
        fault: None,
        user: None,
        received_at,
        auth: None,
    };
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let len = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(MAX_BODY + 1);
            let resp = SnError::too_large(len).into_response();
            entry.status = Some(resp.status().as_u16());
            shared.control().log.push(entry);
            return resp;
        }
    };
    entry.body = if is_token {
        oauth::body_for_log(&parts, &bytes)
    } else {
        body_for_log(&bytes)
    };

    // The token endpoint is not a Table API transaction.
    let _running = match (&shared.semaphores, is_token) {
        (Some(pool), false) => match pool.enter().await {
            Some(running) => Some(running),
            None => {
                let resp = SnError::new(
                    429,
                    "Too many requests",
                    Some("All API_INT semaphores are busy and the queue is full"),
                )
                .into_response();
                entry.status = Some(429);
                entry.fault = Some("semaphores".into());
                shared.control().log.push(entry);
                return resp;
            }
        },
        _ => None,
    };
    let (latency, decision) = {
        let mut c = shared.control();
        let d = c.faults.decide(method.as_str(), &path);
        (c.latency, d)
    };
    let delay = latency + decision.delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if decision.delay > Duration::ZERO {
        entry.fault = Some("latency".into());
    }
    let mut drop_after = false;
    let resp = match decision.action {
        Some(FaultAction::Status {
            status,
            body,
            retry_after,
        }) => {
            entry.fault = Some("status".into());
            let mut resp = match body {
                Some(b) => {
                    let status = http::StatusCode::from_u16(status)
                        .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
                    crate::errors::json_response(status, &b)
                }
                None => SnError::for_status(status).into_response(),
            };
            if let Some(secs) = retry_after {
                if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert(http::header::RETRY_AFTER, v);
                }
            }
            resp
        }
        Some(FaultAction::Hang) => {
            entry.fault = Some("hang".into());
            shared.control().log.push(entry);
            shared.stopped().await;
            return SnError::for_status(503).into_response();
        }
        Some(FaultAction::DropAfterWrite) => {
            entry.fault = Some("drop_after_write".into());
            drop_after = true;
            answer(&shared, &parts, &method, &bytes, &mut entry).await
        }
        Some(FaultAction::HtmlAfterWrite { status }) => {
            entry.fault = Some("html_after_write".into());
            let (_, caller) = table_api::handle(&shared, &parts, method.clone(), &bytes).await;
            if let Some((user, how)) = caller {
                entry.user = Some(user);
                entry.auth = Some(how.as_str().to_string());
            }
            let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
            (
                status,
                [(http::header::CONTENT_TYPE, "text/html;charset=UTF-8")],
                "<html><head><title>Access gateway</title></head>\
                 <body>Your session was checked.</body></html>",
            )
                .into_response()
        }
        Some(FaultAction::Latency { .. }) | None => {
            answer(&shared, &parts, &method, &bytes, &mut entry).await
        }
    };
    entry.status = Some(resp.status().as_u16());
    shared.control().log.push(entry);
    if drop_after {
        if let Some(ConnKill(k)) = kill {
            k.notify_one();
        }
        // The connection task drops this future together with the connection.
        std::future::pending::<()>().await;
    }
    resp
}

/// The real answer: the token endpoint or the Table API; notes who called in the log entry.
async fn answer(
    shared: &Arc<Shared>,
    parts: &http::request::Parts,
    method: &http::Method,
    bytes: &[u8],
    entry: &mut ReceivedRequest,
) -> Response {
    if entry.path == oauth::TOKEN_PATH {
        let (resp, user) = oauth::handle(shared, parts, bytes);
        entry.user = user;
        return resp;
    }
    let (resp, caller) = table_api::handle(shared, parts, method.clone(), bytes).await;
    if let Some((user, how)) = caller {
        entry.user = Some(user);
        entry.auth = Some(how.as_str().to_string());
    }
    resp
}
