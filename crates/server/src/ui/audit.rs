//! The audit page (administrators only): the trail of `GET /api/v1/audit`, filtered by
//! object type, each change in words.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::Value;
use snowbound_store::{AuditFilter, AUDIT_EVENTS_KEPT};

use super::layout::{error_page, render, when, Page, UiResult};
use super::session::UiUser;
use crate::routes::audit::OBJECT_TYPES;
use crate::state::AppState;

/// Events on one page; older ones are in the API (`before=`).
const PAGE_EVENTS: u32 = 200;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(list))
}

struct Row {
    at: String,
    actor: String,
    object_type: String,
    object_id: String,
    action: String,
    changes: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    page: Page,
    rows: Vec<Row>,
    types: [&'static str; 5],
    selected: String,
    kept: i64,
}

impl AuditPage {
    fn is_selected(&self, object_type: &str) -> bool {
        self.selected == object_type
    }
}

#[derive(Deserialize)]
struct Filter {
    object_type: Option<String>,
}

/// One field's change as a line: "a → b", or a secret's "changed".
fn in_words(change: &Value) -> String {
    match change {
        Value::String(secret) => secret.clone(),
        change => format!("{} → {}", change["from"], change["to"]),
    }
}

async fn list(
    State(state): State<AppState>,
    user: UiUser,
    Query(filter): Query<Filter>,
) -> UiResult {
    if !user.user.is_admin {
        return Ok(error_page(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Only administrators read the audit trail.",
            Some(&user),
        ));
    }
    let selected = filter
        .object_type
        .filter(|t| OBJECT_TYPES.contains(&t.as_str()))
        .unwrap_or_default();
    let events = state
        .services
        .audit()
        .list(
            &user.caller(),
            AuditFilter {
                object_type: (!selected.is_empty()).then(|| selected.clone()),
                limit: Some(PAGE_EVENTS),
                ..AuditFilter::default()
            },
        )
        .await?;
    let rows = events
        .into_iter()
        .map(|e| Row {
            at: when(&e.at),
            changes: e
                .changes
                .as_object()
                .map(|c| c.iter().map(|(k, v)| (k.clone(), in_words(v))).collect())
                .unwrap_or_default(),
            actor: e.actor,
            object_type: e.object_type,
            object_id: e.object_id,
            action: e.action,
        })
        .collect();
    Ok(render(
        StatusCode::OK,
        &AuditPage {
            page: Page::new("Audit trail", "audit", &user),
            rows,
            types: OBJECT_TYPES,
            selected,
            kept: AUDIT_EVENTS_KEPT,
        },
    ))
}
