//! The OpenAPI 3.1 document of the HTTP API, served at `GET /api/v1/openapi.json`.
//!
//! It is not written by hand: the paths come from the `#[utoipa::path]` of each handler,
//! collected by the very `OpenApiRouter` the application router is built from
//! ([`crate::routes`]), and the schemas from `ToSchema` derived on the request and answer
//! types. What every operation may answer in the error shape ([`crate::error`]) is added
//! here by rule (who may call it, whether it takes a body, path or query parameters),
//! so the statuses cannot be forgotten route by route.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::openapi::path::{HttpMethod, Operation, ParameterIn};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::error::ErrorBody;

/// The answer of `/healthz` and `/readyz`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Status {
    /// `ok` (`/healthz`); `ready`, `starting`, `shutting_down`, `engine_stopped` or
    /// `database_unreachable` (`/readyz`).
    status: String,
    /// Why the database is unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Snowbound",
        description = "Incidents in, ServiceNow records out (and back). Every error is \
            `{\"error\":{\"code\",\"message\",\"field\"?,\"fields\"?}}`; `field` is the dotted \
            path of the body key or query parameter at fault.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    // Served by routers of their own (the node's front and the metrics registry); the
    // route coverage test holds them to the document like every other route.
    paths(crate::readiness::readyz, crate::metrics::scrape),
    components(schemas(ErrorBody, Status)),
    modifiers(&SecuritySchemes),
    security(("api_token" = [])),
    tags(
        (name = "teams", description = "Teams and their tokens (admin)"),
        (name = "incidents", description = "Incidents, their changes and their links"),
        (name = "integrations", description = "ServiceNow integrations and their set-up"),
        (name = "sources", description = "Alert sources and their ingest URLs"),
        (name = "users", description = "Web UI accounts and login limits (admin)"),
        (name = "audit", description = "Who changed what, newest first (admin)"),
        (name = "routing-rules", description = "Per-team routing of incidents to integrations"),
        (name = "ingest", description = "Alerts and ServiceNow pokes, authenticated by the URL"),
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "meta", description = "This document"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.into());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            "api_token",
            bearer(
                "The admin token (SNOWBOUND_ADMIN_TOKEN) or a team token \
                 (POST /api/v1/tokens): `Authorization: Bearer <token>`.",
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            bearer("Needed by /metrics only when SNOWBOUND_METRICS_TOKEN is set."),
        );
    }
}

/// The whole document: the routes' operations, the schemas they use, and the error
/// answers each may give.
pub fn document() -> Document {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::routes::documented_routes().into_openapi());
    add_error_answers(&mut doc);
    doc
}

#[utoipa::path(get, operation_id = "openapi", path = "/openapi.json", tag = "meta", security(()),
    description = "This document (OpenAPI 3.1). Browse it with any OpenAPI viewer, \
        e.g. Swagger UI or `npx @redocly/cli build-docs openapi.json`.",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub(crate) async fn document_json() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| {
        document()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
    });
    ([(header::CONTENT_TYPE, "application/json")], json.as_str())
}

/// Error answers by rule; an operation's own `responses(...)` wins for its statuses.
const ERRORS: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "The body is not JSON (`invalid_json`) or could not be read",
    ),
    (
        "401",
        "Unauthorized",
        "No valid `Authorization: Bearer <token>`",
    ),
    (
        "403",
        "Forbidden",
        "The token may not do this (admin only, or another team's object)",
    ),
    (
        "404",
        "NotFound",
        "No such object, or one the caller may not see",
    ),
    (
        "409",
        "Conflict",
        "A name or key is taken, the object changed concurrently, or the transition is not allowed",
    ),
    ("413", "PayloadTooLarge", "The body exceeds 1 MiB"),
    (
        "415",
        "UnsupportedMediaType",
        "The body must be JSON (`Content-Type: application/json`)",
    ),
    (
        "422",
        "InvalidField",
        "A value is wrong; `field` names it (`fields` lists every one)",
    ),
    ("500", "Internal", "Internal error; see the server log"),
];

fn add_error_answers(doc: &mut Document) {
    let components = doc.components.get_or_insert_with(Default::default);
    for (_, name, description) in ERRORS {
        let answer = ResponseBuilder::new()
            .description(*description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                    .build(),
            )
            .build();
        components.responses.insert((*name).into(), answer.into());
    }
    for (path, item) in doc.paths.paths.iter_mut() {
        let has_path_params = path.contains('{');
        let operations = [
            (HttpMethod::Get, &mut item.get),
            (HttpMethod::Post, &mut item.post),
            (HttpMethod::Put, &mut item.put),
            (HttpMethod::Patch, &mut item.patch),
            (HttpMethod::Delete, &mut item.delete),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                for status in error_statuses(&method, operation, has_path_params) {
                    let (_, name, _) = ERRORS
                        .iter()
                        .find(|(s, ..)| *s == status)
                        .expect("every status has its answer");
                    operation
                        .responses
                        .responses
                        .entry(status.into())
                        .or_insert_with(|| {
                            RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
                        });
                }
            }
        }
    }
}

/// Which error answers an operation can give, from what it takes.
fn error_statuses(
    method: &HttpMethod,
    operation: &Operation,
    has_path_params: bool,
) -> Vec<&'static str> {
    // Operations without `security(...)` of their own need the API token.
    let token = operation.security.is_none();
    let body = operation.request_body.is_some();
    let query = operation
        .parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == ParameterIn::Query);
    let write = matches!(
        method,
        HttpMethod::Post | HttpMethod::Patch | HttpMethod::Delete
    );
    let mut statuses = Vec::new();
    if body {
        statuses.extend(["400", "413", "415"]);
    }
    if token {
        statuses.extend(["401", "403"]);
    }
    if has_path_params {
        statuses.push("404");
    }
    if token && write {
        statuses.push("409");
    }
    if body || query {
        statuses.push("422");
    }
    statuses.push("500");
    statuses
}

/// Path templates of every route a node serves, web UI pages left out: the application
/// router's, the front's (`/readyz`) and the metrics registry's (`/metrics`), composed as
/// the binary composes them. The route coverage test probes each of these over HTTP and
/// requires every method it answers to be in [`document`].
pub fn served_route_templates() -> BTreeSet<String> {
    let app = crate::routes::app_routes();
    let front = crate::readiness::front(crate::readiness::Readiness::new());
    let metrics = crate::metrics::Metrics::new(None).instrument(axum::Router::new());
    let ui = route_templates(&crate::ui::router());
    [
        route_templates(&app),
        route_templates(&front),
        route_templates(&metrics),
    ]
    .into_iter()
    .flatten()
    .filter(|path| !ui.contains(path))
    .collect()
}

/// axum lists a router's routes only in its `Debug` output (`RouteId(n): "/path"` in its
/// `path_router`; the `fallback_router` after it holds axum's own catch-alls). Should that
/// output change, this finds nothing and the coverage test fails, the safe way round.
fn route_templates<S>(router: &axum::Router<S>) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let routes = debug
        .split_once("fallback_router:")
        .map_or(debug.as_str(), |(routes, _)| routes);
    let mut templates = BTreeSet::new();
    let mut rest = routes;
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at + "RouteId(".len()..];
        let Some(after) = rest.find("): \"") else {
            continue;
        };
        let digits = &rest[..after];
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let path = &rest[after + "): \"".len()..];
        if let Some(end) = path.find('"') {
            templates.insert(path[..end].to_owned());
        }
    }
    templates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_read_from_a_router() {
        let router: axum::Router = axum::Router::new()
            .route("/a/{id}", axum::routing::get(|| async {}))
            .nest(
                "/n",
                axum::Router::new().route("/b", axum::routing::post(|| async {})),
            );
        let templates: Vec<String> = route_templates(&router).into_iter().collect();
        assert_eq!(templates, ["/a/{id}", "/n/b"]);
    }

    #[test]
    fn an_operation_with_a_body_and_a_token_may_answer_every_client_error() {
        let doc = document();
        let create = doc.paths.paths["/api/v1/incidents"].post.as_ref().unwrap();
        for status in ["400", "401", "403", "409", "413", "415", "422", "500"] {
            assert!(create.responses.responses.contains_key(status), "{status}");
        }
        let health = doc.paths.paths["/healthz"].get.as_ref().unwrap();
        assert!(!health.responses.responses.contains_key("401"));
    }
}
