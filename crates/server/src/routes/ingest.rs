//! `POST /ingest/{secret}`: no bearer token; the secret in the URL names the source and
//! is its only credential. Any Content-Type is accepted (many senders set none); the
//! body must be JSON of the source's kind. 202 is answered only after every alert in
//! the body is committed; on an error, alerts before it are committed and a repeat of
//! the whole body is harmless (an unchanged alert writes nothing).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bytes::Bytes;
use serde_json::json;
use snowbound_core::source::SourceKind;

use crate::error::{ApiError, ApiResult};
use crate::extract::Path;
use crate::ingest::{alertmanager, webhook};
use crate::state::AppState;

pub async fn ingest(
    State(state): State<AppState>,
    Path(secret): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let source = state
        .store
        .source_by_secret(&secret)
        .await?
        .ok_or_else(|| ApiError::not_found("source (unknown or rotated ingest URL)"))?;
    let service = state.incidents();
    let answer = match source.kind {
        SourceKind::Webhook => {
            let alert = webhook::parse(&body, &source)?;
            json!(service.ingest(&source, alert).await?)
        }
        SourceKind::Alertmanager => {
            let mut outcomes = Vec::new();
            for alert in alertmanager::parse(&body, &source)? {
                outcomes.push(service.ingest(&source, alert).await?);
            }
            json!({ "alerts": outcomes })
        }
    };
    Ok((StatusCode::ACCEPTED, axum::Json(answer)))
}
