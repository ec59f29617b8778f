//! The route table and the layers around it.

pub(crate) mod audit;
mod incidents;
mod ingest;
mod integrations;
mod merge_patch;
mod routing_rules;
pub(crate) mod servicenow;
pub(crate) mod sources;
mod teams;
mod tokens;
mod users;

use std::any::Any;

use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

/// Bodies larger than this answer 413 before a handler sees them.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `/api/v1`: each `routes!` registers its handlers and their OpenAPI operations
/// together, so a route cannot be served without being in the document.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(crate::openapi::document_json))
        .routes(routes!(teams::list, teams::create))
        .routes(routes!(teams::create_token, tokens::list))
        .routes(routes!(tokens::revoke))
        .routes(routes!(users::list))
        .routes(routes!(users::update))
        .routes(routes!(users::reset_lockouts))
        .routes(routes!(audit::list))
        .routes(routes!(integrations::list, integrations::create))
        .routes(routes!(
            integrations::get,
            integrations::patch,
            integrations::delete
        ))
        .routes(routes!(servicenow::test_connection))
        .routes(routes!(servicenow::choices))
        .routes(routes!(servicenow::preview))
        .routes(routes!(servicenow::integration_api_calls))
        .routes(routes!(servicenow::incident_api_calls))
        .routes(routes!(incidents::list, incidents::create))
        .routes(routes!(incidents::get, incidents::edit))
        .routes(routes!(incidents::acknowledge))
        .routes(routes!(incidents::resolve))
        .routes(routes!(incidents::reopen))
        .routes(routes!(incidents::forward))
        .routes(routes!(incidents::comment))
        .routes(routes!(incidents::retry_link))
        .routes(routes!(incidents::recreate_link))
        .routes(routes!(sources::list, sources::create))
        .routes(routes!(sources::get, sources::patch, sources::delete))
        .routes(routes!(sources::rotate))
        .routes(routes!(sources::payloads))
        .routes(routes!(sources::mapping_preview))
        .routes(routes!(routing_rules::list, routing_rules::create))
        .routes(routes!(routing_rules::reorder))
        .routes(routes!(routing_rules::history))
        .routes(routes!(
            routing_rules::get,
            routing_rules::patch,
            routing_rules::delete
        ))
}

/// Every route of the application router that is not a web UI page: the document of
/// [`crate::openapi`] is built from this very value.
pub(crate) fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .nest("/api/v1", api_routes())
        .routes(routes!(ingest::ingest))
}

/// The application's routes before state and layers: the API's and the web UI's.
pub(crate) fn app_routes() -> Router<AppState> {
    let (documented, _) = documented_routes().split_for_parts();
    documented
        .merge(crate::ui::router())
        .route_layer(middleware::from_fn(crate::metrics::note_route))
        .fallback(not_found)
}

/// `/healthz`, `/api/v1`, `/ingest` and the web UI, with tracing (method, path, status,
/// latency; never headers or bodies), the body limit, JSON errors for every failure and
/// a JSON 500 on panic.
pub fn router(state: AppState) -> Router {
    app_routes()
        .with_state(state)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(middleware::map_response(json_errors))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(CatchPanicLayer::custom(panic_response))
        // Outermost, so the span, the answer (panics included) and every layer see one id.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID.clone()))
        .layer(SetRequestIdLayer::new(REQUEST_ID.clone(), MakeRequestUuid))
        .layer(middleware::map_request(drop_unusable_request_id))
}

static REQUEST_ID: header::HeaderName = header::HeaderName::from_static("x-request-id");

/// The longest `x-request-id` taken from a client; a longer one is replaced by ours.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A client's `x-request-id` is kept (a proxy in front may have set it) when it is short
/// printable ASCII; anything else would put what the client likes into every log line of
/// the request, so it is dropped and a fresh one made.
async fn drop_unusable_request_id(
    mut request: axum::http::Request<axum::body::Body>,
) -> axum::http::Request<axum::body::Body> {
    let usable = request.headers().get(&REQUEST_ID).is_none_or(|value| {
        value.len() <= MAX_REQUEST_ID_LEN && value.as_bytes().iter().all(u8::is_ascii_graphic)
    });
    if !usable {
        request.headers_mut().remove(&REQUEST_ID);
    }
    request
}

/// tower-http's default span plus the request id, with the ingest secret left out: the URL is the source's
/// only credential, and every log line inside a request carries its span.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Info, not debug: the default filter keeps it, so every warning and error logged
    // while answering carries the request id (the span itself writes no line).
    tracing::info_span!(
        "request",
        request_id,
        method = %request.method(),
        uri = %loggable_uri(request.uri()),
        version = ?request.version(),
    )
}

fn loggable_uri(uri: &axum::http::Uri) -> std::borrow::Cow<'_, str> {
    match uri.path().strip_prefix("/ingest/") {
        Some(_) => "/ingest/<redacted>".into(),
        None => uri
            .path_and_query()
            .map_or(uri.path(), |p| p.as_str())
            .into(),
    }
}

/// Says ok only when the database takes a committed write: a node whose writes fail
/// (full disk, lost connection) cannot accept an alert, so it must not look healthy.
#[utoipa::path(get, operation_id = "healthz", path = "/healthz", tag = "health", security(()),
    description = "Liveness: ok while the database takes a committed write.",
    responses(
        (status = 200, description = "The node works", body = crate::openapi::Status),
        (status = 503, description = "The database refuses writes", body = crate::error::ErrorBody),
    ))]
async fn healthz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match state.store.check_writable().await {
        Ok(()) => Json(serde_json::json!({"status": "ok"})).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "health check: the database refuses writes");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                format!("the database does not accept writes: {err}"),
            )
            .into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::for_status(StatusCode::NOT_FOUND)
}

/// Layers and axum itself answer some errors in plain text or with an empty body (413
/// from the body limit, 405); clients get our JSON shape for those too.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    // The web UI answers its errors as HTML pages of its own.
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_json || is_html {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let mut replaced = ApiError::for_status(status).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    for (name, value) in parts.headers.iter() {
        replaced.headers_mut().insert(name.clone(), value.clone());
    }
    replaced
}

fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %detail, "handler panicked");
    ApiError::internal().into_response()
}
