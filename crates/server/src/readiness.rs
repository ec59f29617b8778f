//! Readiness (`/readyz`): whether a load balancer should send this node traffic now.
//! `/healthz` is liveness (the process works and its database takes writes); readiness
//! adds the node's phase. A node listens from its first moment, before its database is
//! open and migrated, so that `/readyz` can say "starting" instead of refusing the
//! connection; and it keeps listening while it shuts down, so that it can say
//! "shutting_down" while its engine finishes the calls in flight.
//!
//! [`front`] is the router served from the start: `/readyz` answers from the phase, and
//! every other request goes to the application router once [`Readiness::serve`] hands
//! it over (503 "starting" until then).

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use snowbound_store::Store;
use tower::ServiceExt;

const STARTING: u8 = 0;
const SERVING: u8 = 1;
const SHUTTING_DOWN: u8 = 2;

/// The node's phase, shared by the binary (which moves it) and [`front`] (which says it).
#[derive(Clone, Default)]
pub struct Readiness(Arc<Inner>);

#[derive(Default)]
struct Inner {
    phase: AtomicU8,
    engine_running: AtomicBool,
    app: OnceLock<(Router, Arc<dyn Store>)>,
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// The database is open and migrated: `app` answers from now on, over `store`.
    pub fn serve(&self, app: Router, store: Arc<dyn Store>) {
        let _ = self.0.app.set((app, store));
        self.0.phase.store(SERVING, Ordering::SeqCst);
    }

    /// Whether the sync engine's loop is running; a node whose engine ended is not ready.
    pub fn set_engine_running(&self, running: bool) {
        self.0.engine_running.store(running, Ordering::SeqCst);
    }

    /// From now on `/readyz` says "shutting_down"; requests are still served.
    pub fn shutting_down(&self) {
        self.0.phase.store(SHUTTING_DOWN, Ordering::SeqCst);
    }
}

/// `/readyz`, then the application router once handed over.
pub fn front(readiness: Readiness) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .fallback(forward)
        .with_state(readiness)
}

fn not_ready(status: &str, detail: Option<String>) -> Response {
    let mut body = serde_json::json!({"status": status});
    if let Some(detail) = detail {
        body["detail"] = detail.into();
    }
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

#[utoipa::path(get, operation_id = "readyz", path = "/readyz", tag = "health", security(()),
    description = "Readiness: whether a load balancer should send this node traffic now.",
    responses(
        (status = 200, description = "Ready", body = crate::openapi::Status),
        (status = 503, description = "Starting, shutting down, engine stopped or database unreachable",
            body = crate::openapi::Status),
    ))]
pub(crate) async fn readyz(State(readiness): State<Readiness>) -> Response {
    let inner = &readiness.0;
    match inner.phase.load(Ordering::SeqCst) {
        STARTING => return not_ready("starting", None),
        SHUTTING_DOWN => return not_ready("shutting_down", None),
        _ => {}
    }
    let Some((_, store)) = inner.app.get() else {
        return not_ready("starting", None);
    };
    if !inner.engine_running.load(Ordering::SeqCst) {
        return not_ready("engine_stopped", None);
    }
    // A committed write, as for /healthz: a node that cannot write cannot take alerts.
    if let Err(err) = store.check_writable().await {
        tracing::warn!(error = %err, "readiness check: the database refuses writes");
        return not_ready("database_unreachable", Some(err.to_string()));
    }
    Json(serde_json::json!({"status": "ready"})).into_response()
}

async fn forward(State(readiness): State<Readiness>, request: Request) -> Response {
    match readiness.0.app.get() {
        Some((app, _)) => match app.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        },
        None => not_ready("starting", None),
    }
}
