//! `POST /ingest/{secret}`: no bearer token; the secret in the URL names the source and
//! is its only credential. Any Content-Type is accepted (many senders set none); the
//! body must be JSON of the source's kind.
//!
//! A `grafana` source with a shared secret refuses (401) a request whose HMAC signature
//! is wrong or missing. A `json` source keeps every body (the last 20) before reading
//! it through its mapping, so one the mapping cannot read (422 naming the mapping field
//! and its path) is there to build the mapping on.
//!
//! 202 is answered only after every alert that could be stored is committed. The alerts
//! of an Alertmanager or Grafana body are applied concurrently (their writes share commits), each on
//! its own, so one alert never costs the others:
//! - a malformed alert is refused (`"action": "refused"` with its error) and the rest
//!   are applied; 202 unless every alert was refused (then 422 naming the first);
//! - an alert that could not be stored now (database trouble, a key that kept racing)
//!   makes the answer 503 after all the others were applied, listing what happened to
//!   each: Alertmanager resends on 5xx only, and the resent body is harmless because an
//!   alert already stored is unchanged by a repeat.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::stream::{self, StreamExt};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use snowbound_core::ingest::{alertmanager, grafana, json_mapping, webhook, Alert};
use snowbound_core::json::BodyError;
use snowbound_core::source::{Source, SourceKind};

use crate::error::{ApiError, ApiResult, ErrorBody, ErrorDetail};
use crate::extract::{Path, RawBody};
use crate::state::AppState;

/// Alerts of one body applied at once: enough to fill a group commit, few enough that
/// one huge body does not take every database connection.
const ALERTS_IN_FLIGHT: usize = 64;

#[utoipa::path(post, operation_id = "ingest", path = "/ingest/{secret}", tag = "ingest", security(()),
    description = "An alert body of the source's kind, or a ServiceNow business rule's poke. \
        Any Content-Type is taken. 202 is answered once every alert that could be stored is \
        committed; an Alertmanager body refused alert by alert answers 422 only when every \
        alert was refused.",
    params(("secret" = String, Path, description = "The source's secret: its ingest URL is its only credential")),
    request_body(content = IngestBody, description = "The body of the source's kind"),
    responses(
        (status = 202, description = "Applied (or queued, for a poke)", body = IngestAnswer),
        (status = 400, description = "Not JSON", body = ErrorBody),
        (status = 401, description = "A grafana source's signature is wrong or missing", body = ErrorBody),
        (status = 404, description = "No source has this secret (unknown or rotated)", body = ErrorBody),
        (status = 413, description = "The body exceeds 1 MiB", body = ErrorBody),
        (status = 422, description = "A bad value; `field` names it", body = ErrorBody),
        (status = 429, description = "The source is over its ingest limit; nothing of the body was stored. Retry after `Retry-After`", body = ErrorBody),
        (status = 503, description = "Some alerts could not be stored now; send the body again",
            body = NotStored),
    ))]
pub async fn ingest(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Response> {
    let source = state
        .services
        .sources()
        .by_secret(&secret)
        .await?
        .ok_or_else(|| ApiError::not_found("source (unknown or rotated ingest URL)"))?;
    match source.kind {
        SourceKind::Email => Err(ApiError::bad_request(
            "wrong_source_type",
            "this is an email source: send mail to its email_address, not HTTP",
        )),
        SourceKind::Servicenow => {
            admit(&state, &source, 1)?;
            poke(&state, &source, &body).await
        }
        SourceKind::Webhook => {
            let alert = webhook::parse(&body, &source);
            one_alert(&state, source, alert).await
        }
        SourceKind::Json => {
            // Kept first: a payload the mapping cannot read is the one its admin needs.
            state
                .services
                .sources()
                .keep_payload(&source, &body)
                .await?;
            let alert = match &source.json {
                Some(mapping) => json_mapping::parse(mapping, &body),
                None => Err(BodyError::field(
                    "json",
                    "this source has no mapping yet; the payload was kept to build one on",
                )),
            };
            one_alert(&state, source, alert).await
        }
        SourceKind::Alertmanager => {
            let alerts = alertmanager::parse(&body, &source)?;
            many_alerts(&state, source, alerts).await
        }
        SourceKind::Grafana => {
            check_signature(&state, &source, &headers, &body).await?;
            let alerts = grafana::parse(&body, &source)?;
            many_alerts(&state, source, alerts).await
        }
    }
}

/// A Grafana source with a shared secret takes only requests Grafana signed with it.
async fn check_signature(
    state: &AppState,
    source: &Source,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<()> {
    let (Some(settings), Some(secret)) = (
        &source.grafana,
        state.services.sources().hmac_secret(source).await?,
    ) else {
        return Ok(());
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    grafana::verify_signature(
        secret.expose_secret().as_bytes(),
        settings,
        header,
        body,
        Utc::now(),
    )
    .map_err(|refused| {
        count(state, SourceKind::Grafana, "refused");
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            refused.to_string(),
        )
    })
}

/// A body that is one alert: its outcome, or its refusal.
async fn one_alert(
    state: &AppState,
    source: Source,
    alert: Result<Alert, BodyError>,
) -> ApiResult<Response> {
    let kind = source.kind;
    let counted = |outcome: &str| count(state, kind, outcome);
    let alert = alert.inspect_err(|_| counted("refused"))?;
    admit(state, &source, 1)?;
    let service = state.incidents();
    let intake = service.intake(source).await?;
    let outcome = service
        .ingest(&intake, alert)
        .await
        .inspect_err(|_| counted("failed"))?;
    counted(outcome.action);
    Ok((StatusCode::ACCEPTED, axum::Json(json!(outcome))).into_response())
}

/// A body of several alerts (Alertmanager's, Grafana's), each applied on its own.
async fn many_alerts(
    state: &AppState,
    source: Source,
    alerts: Vec<Result<Alert, BodyError>>,
) -> ApiResult<Response> {
    let kind = source.kind;
    if let Some(Err(first)) = alerts.first() {
        if alerts.iter().all(Result::is_err) {
            for _ in &alerts {
                count(state, kind, "refused");
            }
            return Err(first.clone().into());
        }
    }
    admit(state, &source, alerts.len())?;
    let service = state.incidents();
    let intake = service.intake(source).await?;
    // Alerts are applied concurrently, so their writes share group commits; the
    // answers keep the body's order. Alerts with one key still take turns.
    let applied: Vec<(Value, bool)> = stream::iter(alerts)
        .map(|alert| {
            let (service, intake) = (&service, &intake);
            async move {
                match alert {
                    Err(refused) => {
                        let refused = ApiError::from(refused);
                        (
                            json!({"action": "refused", "error": refused.to_json()}),
                            false,
                        )
                    }
                    Ok(alert) => {
                        let dedup_key = alert.dedup_key.clone();
                        match service.ingest(intake, alert).await {
                            Ok(outcome) => (json!(outcome), false),
                            Err(e) => {
                                let e = ApiError::from(e);
                                let answer = json!({"dedup_key": dedup_key,
                                    "action": "failed", "error": e.to_json()});
                                (answer, true)
                            }
                        }
                    }
                }
            }
        })
        .buffered(ALERTS_IN_FLIGHT)
        .collect()
        .await;
    for (answer, _) in &applied {
        let action = answer["action"].as_str().unwrap_or("failed");
        count(state, kind, action);
    }
    let unstored = applied.iter().filter(|(_, failed)| *failed).count();
    let answers: Vec<Value> = applied.into_iter().map(|(answer, _)| answer).collect();
    if unstored > 0 {
        return Ok(partly_stored(unstored, answers));
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({ "alerts": answers })),
    )
        .into_response())
}

/// Refuses the whole body, before any of it is written, when the source is over its limit.
fn admit(state: &AppState, source: &Source, alerts: usize) -> ApiResult<()> {
    state
        .services
        .ingest_limits
        .admit(source.id, alerts)
        .inspect_err(|_| {
            if let Some(metrics) = &state.metrics {
                metrics.alerts_ingested(source.kind, "rate_limited", alerts as u64);
            }
        })?;
    Ok(())
}

fn count(state: &AppState, kind: SourceKind, outcome: &str) {
    if let Some(metrics) = &state.metrics {
        metrics.alerts_ingested(kind, outcome, 1);
    }
}

fn partly_stored(unstored: usize, answers: Vec<Value>) -> Response {
    let error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not_stored",
        format!(
            "{unstored} of {} alerts could not be stored now; send the body again \
             (alerts already stored are unchanged by a repeat)",
            answers.len()
        ),
    );
    let body = json!({"error": error.to_json(), "alerts": answers});
    (error.status, axum::Json(body)).into_response()
}

/// What `/ingest` takes, for the document: which one depends on the source's kind.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum IngestBody {
    Webhook(webhook::Body),
    Alertmanager(alertmanager::Body),
    /// A `grafana` source's body (Grafana's webhook contact point) or a `json` source's
    /// body of any shape, read through its mapping.
    Other(serde_json::Value),
    Poke(Poke),
}

/// What `/ingest` answers with 202, for the document (the handler builds it as JSON).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum IngestAnswer {
    /// A webhook alert.
    Webhook(snowbound_services::ingest::Outcome),
    /// An Alertmanager body: each alert's outcome, in the body's order.
    Alertmanager(AlertAnswers),
    /// A poke: `{"action": "queued"}`.
    Poke(Queued),
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct AlertAnswers {
    alerts: Vec<AlertAnswer>,
}

/// One alert of an Alertmanager body.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum AlertAnswer {
    Applied(snowbound_services::ingest::Outcome),
    /// `action` is `refused`: the alert was malformed; the others were applied.
    Refused {
        action: String,
        error: ErrorDetail<'static>,
    },
    /// `action` is `failed`: it could not be stored now.
    Failed {
        dedup_key: String,
        action: String,
        error: ErrorDetail<'static>,
    },
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct Queued {
    /// `queued`
    action: String,
}

/// The 503 of an Alertmanager body some of whose alerts could not be stored.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
struct NotStored {
    error: ErrorDetail<'static>,
    alerts: Vec<AlertAnswer>,
}

/// A business rule's `{sys_id, table}`. Only which record changed is taken: whatever else
/// a poke carries is ignored, as anyone holding the URL could forge it; the engine reads
/// the record itself.
#[derive(serde::Deserialize, utoipa::ToSchema)]
struct Poke {
    sys_id: String,
    table: String,
}

async fn poke(state: &AppState, source: &Source, body: &[u8]) -> ApiResult<Response> {
    let poke: Poke = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_field("body", format!("expected {{sys_id, table}}: {e}")))?;
    state
        .services
        .inbound()
        .poke(source, &poke.sys_id, &poke.table)
        .await?;
    if let Some(metrics) = &state.metrics {
        if let Some(settings) = &source.servicenow {
            metrics.inbound_poke(settings.integration_id);
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(json!({"action": "queued"})),
    )
        .into_response())
}
