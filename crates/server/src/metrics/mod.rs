//! `/metrics` in the Prometheus exposition format, with `prometheus-client`: OpenMetrics
//! text when the scraper asks for it (Prometheus does), else the classic text format.
//! Open by default; with a token configured (`SNOWBOUND_METRICS_TOKEN`) a scrape must send
//! it as a bearer token.
//!
//! Counters are fed as things happen: requests (below), ingested alerts and pokes (the
//! ingest route), the engine's ServiceNow calls, pauses and sync lags (its observers).
//! Gauges of what the database holds are computed at each scrape (`gauges.rs`).
//!
//! Requests are counted by the matched route template (`/api/v1/incidents/{id}`, never
//! the raw path, so label values stay bounded) and status class. The route is only known
//! inside the router, after matching, while the status is only final outside every
//! layer; [`Metrics::instrument`] puts a slot in the request that [`note_route`], a route
//! layer, fills in.

mod gauges;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use snowbound_core::source::SourceKind;
use snowbound_engine::{Engine, EngineObserver};
use snowbound_store::{ApiCallRecord, Store};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use gauges::{Gauges, Sources};

use crate::error::ApiError;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The route label of a request no route matched (404s, the fallback).
const UNMATCHED: &str = "unmatched";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    integration: String,
    method: String,
    status_class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallDurationLabels {
    integration: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntegrationLabels {
    integration: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    integration: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestLabels {
    source_kind: String,
    outcome: String,
}

/// Call durations from a fast instance's tens of milliseconds to the client's timeout.
const CALL_BUCKETS: [f64; 11] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
/// Change→ServiceNow lag: the settle window and one call at best; retries, pauses and
/// a failing instance stretch it to minutes or hours.
const LAG_BUCKETS: [f64; 13] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
];
/// What an ingested alert did: the ingest answers' actions, `refused` (malformed) and
/// `failed` (not stored now).
const INGEST_OUTCOMES: [&str; 9] = [
    "rate_limited",
    "opened",
    "updated",
    "unchanged",
    "resolved",
    "ignored",
    "discarded",
    "refused",
    "failed",
];

/// The node's metrics registry; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    servicenow_calls: Family<CallLabels, Counter>,
    servicenow_call_duration: Family<CallDurationLabels, Histogram>,
    rate_limited: Family<IntegrationLabels, Counter>,
    paused_seconds: Family<IntegrationLabels, Counter<f64, AtomicU64>>,
    token_fetches: Family<OutcomeLabels, Counter>,
    sync_lag: Family<IntegrationLabels, Histogram>,
    alerts_ingested: Family<IngestLabels, Counter>,
    inbound_pokes: Family<IntegrationLabels, Counter>,
    inbound_polls: Family<OutcomeLabels, Counter>,
    gauges: Arc<Gauges>,
    sources: OnceLock<Sources>,
    token: Option<String>,
}

/// Where [`note_route`] leaves the matched route for [`count`].
#[derive(Clone, Default)]
struct RouteSlot(Arc<Mutex<Option<String>>>);

impl Metrics {
    /// `token`: the bearer token a scrape must send; `None` (or blank) leaves it open.
    pub fn new(token: Option<String>) -> Metrics {
        let mut registry = Registry::with_prefix("snowbound");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by matched route template and status class",
            http_requests.clone(),
        );
        let servicenow_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "servicenow_calls",
            "ServiceNow calls made by the sync engine, by integration, method and status class (`error`: no answer)",
            servicenow_calls.clone(),
        );
        let servicenow_call_duration =
            Family::<CallDurationLabels, Histogram>::new_with_constructor(
                (|| Histogram::new(CALL_BUCKETS)) as fn() -> Histogram,
            );
        registry.register_with_unit(
            "servicenow_call_duration",
            "Duration of the sync engine's ServiceNow calls",
            Unit::Seconds,
            servicenow_call_duration.clone(),
        );
        let rate_limited = Family::<IntegrationLabels, Counter>::default();
        registry.register(
            "servicenow_rate_limited",
            "ServiceNow answers 429 (rate limited) to the sync engine, by integration",
            rate_limited.clone(),
        );
        let paused_seconds = Family::<IntegrationLabels, Counter<f64, AtomicU64>>::default();
        registry.register_with_unit(
            "servicenow_paused",
            "Time the sync engine paused an integration after 429s (Retry-After or cool-down)",
            Unit::Seconds,
            paused_seconds.clone(),
        );
        let token_fetches = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "servicenow_token_fetches",
            "OAuth token fetches (oauth_token.do) of this node, by integration and outcome (ok, failed)",
            token_fetches.clone(),
        );
        let sync_lag = Family::<IntegrationLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(LAG_BUCKETS)) as fn() -> Histogram,
        );
        registry.register_with_unit(
            "sync_lag",
            "Change→ServiceNow lag: from an incident's change (or its link's creation) until ServiceNow holds it",
            Unit::Seconds,
            sync_lag.clone(),
        );
        let alerts_ingested = Family::<IngestLabels, Counter>::default();
        registry.register(
            "alerts_ingested",
            "Alerts received at /ingest, by source kind and outcome (opened, updated, unchanged, resolved, ignored, discarded, refused, failed)",
            alerts_ingested.clone(),
        );
        let inbound_pokes = Family::<IntegrationLabels, Counter>::default();
        registry.register(
            "inbound_pokes",
            "Pokes (a ServiceNow business rule naming a changed record) queued, by integration",
            inbound_pokes.clone(),
        );
        let inbound_polls = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "inbound_polls",
            "Polls of ServiceNow for changed records, by integration and outcome",
            inbound_polls.clone(),
        );
        let gauges = Arc::new(Gauges::default());
        registry.register(
            "incidents",
            "Incidents by status, counted in the database at each scrape",
            gauges.incidents.clone(),
        );
        registry.register(
            "links",
            "Links by integration and state (pending, retrying, parked, waiting, synced), counted at each scrape",
            gauges.links.clone(),
        );
        registry.register(
            "engine_leases_in_flight",
            "Links this node's sync engine holds leases on now",
            gauges.leases.clone(),
        );
        registry.register(
            "servicenow_concurrency",
            "ServiceNow calls in flight this node allows per integration now (adaptive concurrency)",
            gauges.concurrency.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            http_requests,
            servicenow_calls,
            servicenow_call_duration,
            rate_limited,
            paused_seconds,
            token_fetches,
            sync_lag,
            alerts_ingested,
            inbound_pokes,
            inbound_polls,
            gauges,
            sources: OnceLock::new(),
            token: token.filter(|t| !t.trim().is_empty()),
        }))
    }

    /// `app` with `/metrics` added and every request counted.
    pub fn instrument(&self, app: Router) -> Router {
        let scrape = Router::new()
            .route("/metrics", get(scrape))
            .with_state(self.clone());
        app.merge(scrape)
            .layer(middleware::from_fn_with_state(self.clone(), count))
    }

    /// Computes the gauges at each scrape from `store` and `engine` (set once).
    pub fn count_from(&self, store: Arc<dyn Store>, engine: Option<Engine>) {
        let _ = self.0.sources.set(Sources {
            store,
            engine: engine.as_ref().map(Engine::downgrade),
        });
    }

    /// One ServiceNow call of the sync engine, as it goes to the API call log: counted,
    /// timed, and noted when it was a 429 or an OAuth token fetch.
    pub fn engine_call(&self, call: &ApiCallRecord) {
        self.servicenow_call(
            call.integration_id,
            &call.method,
            call.status,
            Duration::from_millis(call.duration_ms),
        );
        if call.status == Some(429) {
            self.0
                .rate_limited
                .get_or_create(&IntegrationLabels {
                    integration: call.integration_id.to_string(),
                })
                .inc();
        }
        self.token_fetch(call);
    }

    /// Counts `call` when it was an OAuth token fetch. Called for the engine's calls and
    /// the HTTP layer's (choice lists, Test Connection): they share one token cache, so
    /// either may be the one that fetches.
    pub fn token_fetch(&self, call: &ApiCallRecord) {
        let path = call.url.split(['?', '#']).next().unwrap_or_default();
        if path.ends_with("/oauth_token.do") {
            let ok = call.status.is_some_and(|s| (200..300).contains(&s));
            self.0
                .token_fetches
                .get_or_create(&OutcomeLabels {
                    integration: call.integration_id.to_string(),
                    outcome: if ok { "ok" } else { "failed" }.to_owned(),
                })
                .inc();
        }
    }

    /// An alert of a `kind` source did `outcome` (one of [`INGEST_OUTCOMES`]; anything
    /// else is counted as `failed`, keeping the label bounded).
    pub fn alerts_ingested(&self, kind: SourceKind, outcome: &str, alerts: u64) {
        let outcome = if INGEST_OUTCOMES.contains(&outcome) {
            outcome
        } else {
            "failed"
        };
        self.0
            .alerts_ingested
            .get_or_create(&IngestLabels {
                source_kind: kind.as_str().to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc_by(alerts);
    }

    /// A poke for `integration` was queued.
    pub fn inbound_poke(&self, integration: Uuid) {
        self.0
            .inbound_pokes
            .get_or_create(&IntegrationLabels {
                integration: integration.to_string(),
            })
            .inc();
    }

    /// A poll of `integration` ended; for the inbound engine (nothing calls it yet).
    pub fn inbound_poll(&self, integration: Uuid, ok: bool) {
        self.0
            .inbound_polls
            .get_or_create(&OutcomeLabels {
                integration: integration.to_string(),
                outcome: if ok { "ok" } else { "failed" }.to_owned(),
            })
            .inc();
    }

    /// Refreshes the scrape-time gauges (when [`Metrics::count_from`] was given sources).
    async fn refresh(&self) {
        if let Some(sources) = self.0.sources.get() {
            self.0.gauges.refresh(sources).await;
        }
    }

    /// One ServiceNow call of `integration` (an id: bounded, unlike incident ids).
    pub fn servicenow_call(
        &self,
        integration: Uuid,
        method: &str,
        status: Option<u16>,
        duration: Duration,
    ) {
        // Only methods the engine sends; anything else folds into one value.
        let method = match method.to_ascii_uppercase().as_str() {
            m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE") => m.to_owned(),
            _ => "OTHER".to_owned(),
        };
        let status_class = match status {
            Some(status) => format!("{}xx", status / 100),
            None => "error".to_owned(),
        };
        let integration = integration.to_string();
        self.0
            .servicenow_calls
            .get_or_create(&CallLabels {
                integration: integration.clone(),
                method: method.clone(),
                status_class,
            })
            .inc();
        self.0
            .servicenow_call_duration
            .get_or_create(&CallDurationLabels {
                integration,
                method,
            })
            .observe(duration.as_secs_f64());
    }

    /// The OpenMetrics text, as Prometheus asks for it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.0.registry).expect("writing to a String cannot fail");
        out
    }

    /// The Prometheus text format 0.0.4, for scrapers that do not ask for OpenMetrics
    /// (curl, `promtool check metrics`, older agents). prometheus-client writes only
    /// OpenMetrics; the two differ, for what we expose, in a counter family's name
    /// (`x` with samples `x_total` there, `x_total` here), `# UNIT` and `# EOF`.
    pub fn render_text_0_0_4(&self) -> String {
        let openmetrics = self.render();
        let counters: Vec<&str> = openmetrics
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(openmetrics.len());
        for line in openmetrics.lines() {
            if line.starts_with("# UNIT ") || line == "# EOF" {
                continue;
            }
            let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let (name, tail) = rest.split_once(' ')?;
                counters
                    .contains(&name)
                    .then(|| format!("{prefix}{name}_total {tail}"))
            });
            match renamed {
                Some(renamed) => out.push_str(&renamed),
                None => out.push_str(line),
            }
            out.push('\n');
        }
        out
    }
}

/// The route layer that tells [`count`] which route template matched.
pub(crate) async fn note_route(request: Request, next: Next) -> Response {
    if let (Some(slot), Some(path)) = (
        request.extensions().get::<RouteSlot>(),
        request.extensions().get::<MatchedPath>(),
    ) {
        *slot.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.as_str().to_owned());
    }
    next.run(request).await
}

impl EngineObserver for Metrics {
    fn paused(&self, integration: Uuid, pause: Duration) {
        self.0
            .paused_seconds
            .get_or_create(&IntegrationLabels {
                integration: integration.to_string(),
            })
            .inc_by(pause.as_secs_f64());
    }

    fn synced(&self, integration: Uuid, lag: Duration) {
        self.0
            .sync_lag
            .get_or_create(&IntegrationLabels {
                integration: integration.to_string(),
            })
            .observe(lag.as_secs_f64());
    }

    fn polled(&self, integration: Uuid, ok: bool) {
        self.inbound_poll(integration, ok);
    }
}

async fn count(State(metrics): State<Metrics>, mut request: Request, next: Next) -> Response {
    let slot = RouteSlot::default();
    request.extensions_mut().insert(slot.clone());
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    let route = slot
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .or(matched)
        .unwrap_or_else(|| UNMATCHED.to_owned());
    let status_class = format!("{}xx", response.status().as_u16() / 100);
    metrics
        .0
        .http_requests
        .get_or_create(&HttpLabels {
            route,
            status_class,
        })
        .inc();
    response
}

#[utoipa::path(get, operation_id = "metrics", path = "/metrics", tag = "health",
    security((), ("metrics_token" = [])),
    description = "Prometheus exposition format (0.0.4), or OpenMetrics when asked in \
        `Accept`. Series: docs/OPERATIONS.md.",
    responses(
        (status = 200, description = "The series", content(
            (String = "text/plain; version=0.0.4"),
            (String = "application/openmetrics-text; version=1.0.0"),
        )),
        (status = 401, description = "SNOWBOUND_METRICS_TOKEN is set and the bearer token is not it",
            body = crate::error::ErrorBody),
    ))]
pub(crate) async fn scrape(
    State(metrics): State<Metrics>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Some(token) = &metrics.0.token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(sent.trim().as_bytes().ct_eq(token.trim().as_bytes())) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a scrape of /metrics needs the bearer token set in SNOWBOUND_METRICS_TOKEN",
            )
            .into_response();
        }
    }
    // Held while rendering too: a concurrent refresh clears the families it refills.
    let _refreshing = metrics.0.gauges.refreshing.lock().await;
    metrics.refresh().await;
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    if openmetrics {
        ([(header::CONTENT_TYPE, OPENMETRICS)], metrics.render()).into_response()
    } else {
        (
            [(header::CONTENT_TYPE, PROMETHEUS_TEXT)],
            metrics.render_text_0_0_4(),
        )
            .into_response()
    }
}
