//! `/metrics` in the Prometheus exposition format, with `prometheus-client`: OpenMetrics
//! text when the scraper asks for it (Prometheus does), else the classic text format. Open by default; with a token configured
//! (`SNOWBOUND_METRICS_TOKEN`) a scrape must send it as a bearer token.
//!
//! Requests are counted by the matched route template (`/api/v1/incidents/{id}`, never
//! the raw path, so label values stay bounded) and status class. The route is only known
//! inside the router, after matching, while the status is only final outside every
//! layer; [`Metrics::instrument`] puts a slot in the request that [`note_route`], a route
//! layer, fills in.

use std::sync::{Arc, Mutex};
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
use subtle::ConstantTimeEq;
use uuid::Uuid;

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

/// Call durations from a fast instance's tens of milliseconds to the client's timeout.
const CALL_BUCKETS: [f64; 11] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The node's metrics registry; cheap to clone.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    servicenow_calls: Family<CallLabels, Counter>,
    servicenow_call_duration: Family<CallDurationLabels, Histogram>,
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
        Metrics(Arc::new(Inner {
            registry,
            http_requests,
            servicenow_calls,
            servicenow_call_duration,
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

async fn scrape(State(metrics): State<Metrics>, headers: axum::http::HeaderMap) -> Response {
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
