//! Acting as another user: what an agent does in the ServiceNow UI (opening or editing a
//! record), for tests of changes flowing back (docs/servicenow/AUTH_AND_INBOUND.md §2).
//! The write runs through the same rules as a Table API write — numbering, business
//! rules, data policy, `sys_updated_by`/`sys_updated_on`/`sys_mod_count`, journal — but
//! without authentication, ACLs, rate limits, faults or the request log.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::server::Shared;
use crate::writes::{self, WriteCtx};
use crate::Record;

/// Why an acted-out write did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActAsError {
    #[error("no user {0:?}")]
    UnknownUser(String),
    #[error("no table {0:?}")]
    UnknownTable(String),
    #[error("the fields must be a JSON object")]
    NotAnObject,
    /// The instance refused the write (no such record, data policy, …) with this answer.
    #[error("{status} {message}: {}", detail.as_deref().unwrap_or(""))]
    Refused {
        status: u16,
        message: String,
        detail: Option<String>,
    },
}

pub(crate) fn write(
    shared: &Arc<Shared>,
    user: &str,
    table: &str,
    sys_id: Option<&str>,
    fields: &Value,
) -> Result<Record, ActAsError> {
    if shared.auth().user(user).is_none() {
        return Err(ActAsError::UnknownUser(user.to_string()));
    }
    let def = shared
        .data()
        .def(table)
        .cloned()
        .ok_or_else(|| ActAsError::UnknownTable(table.to_string()))?;
    let input = fields.as_object().ok_or(ActAsError::NotAnObject)?;
    let mut ctx = WriteCtx::new(&shared.data(), user);
    ctx.data_policy = shared.config.data_policy;
    ctx.inactive_close_code_is_empty = shared.config.inactive_close_code_is_empty;
    let id = writes::store(shared, &def, sys_id, input, &ctx).map_err(|e| ActAsError::Refused {
        status: e.status.as_u16(),
        message: e.message,
        detail: e.detail,
    })?;
    let data = shared.data();
    Ok(data.get(&def, &id).cloned().unwrap_or_default())
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/act_as/{user}/{table}", post(create))
        .route("/act_as/{user}/{table}/{sys_id}", patch(update).put(update))
}

fn answer(result: Result<Record, ActAsError>, ok: StatusCode) -> Response {
    match result {
        Ok(record) => (ok, Json(json!({ "record": record }))).into_response(),
        Err(ActAsError::Refused {
            status,
            message,
            detail,
        }) => crate::errors::SnError::new(status, &message, detail.as_deref()).into_response(),
        Err(e @ (ActAsError::UnknownUser(_) | ActAsError::UnknownTable(_))) => {
            crate::control::not_found(&e.to_string())
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

async fn create(
    State(s): State<Arc<Shared>>,
    Path((user, table)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(f) => answer(write(&s, &user, &table, None, &f), StatusCode::CREATED),
        Err(e) => crate::control::bad_request(e),
    }
}

async fn update(
    State(s): State<Arc<Shared>>,
    Path((user, table, sys_id)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(f) => answer(write(&s, &user, &table, Some(&sys_id), &f), StatusCode::OK),
        Err(e) => crate::control::bad_request(e),
    }
}
