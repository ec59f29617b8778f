//! The audit trail as the admin reads it: who changed which integration, source, rule,
//! token or user, newest first. Secrets were masked before they were stored.

use axum::extract::State;
use axum::response::IntoResponse;
use snowbound_core::audit::AuditEvent;
use snowbound_store::AuditFilter;

use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::Query;
use crate::state::AppState;

/// The object types the trail knows, for a clear error on a misspelt filter.
pub const OBJECT_TYPES: [&str; 5] = ["integration", "source", "rule", "token", "user"];

/// The filter of `GET /api/v1/audit` and the `/audit` page.
pub(crate) fn audit_filter(query: &mut Query) -> ApiResult<AuditFilter> {
    let object_type = query.take("object_type").filter(|t| !t.is_empty());
    if let Some(t) = object_type.as_deref().filter(|t| !OBJECT_TYPES.contains(t)) {
        return Err(crate::error::ApiError::invalid_field(
            "object_type",
            format!("`{t}` is not one of {}", OBJECT_TYPES.join(", ")),
        ));
    }
    Ok(AuditFilter {
        object_type,
        object_id: query.take("object_id").filter(|t| !t.is_empty()),
        before: query.parse("before")?,
        limit: query.parse("limit")?,
    })
}

#[utoipa::path(get, operation_id = "audit_list", path = "/audit", tag = "audit",
    description = "Admin only. Every recorded change to integrations, sources, rules, tokens and users, newest first; secrets appear only as \"set\", \"changed\" or \"removed\". The newest 10,000 are kept.",
    params(
        ("object_type" = Option<String>, Query, description = "integration, source, rule, token or user"),
        ("object_id" = Option<String>, Query, description = "Only this object's changes (a reorder is recorded under the team's id)"),
        ("before" = Option<i64>, Query, description = "Only events older than this id (the next page)"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100, at most 1000)"),
    ),
    responses((status = 200, description = "The events, newest first", body = Vec<AuditEvent>)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    mut query: Query,
) -> ApiResult<impl IntoResponse> {
    caller.require_admin()?;
    let filter = audit_filter(&mut query)?;
    query.finish()?;
    Ok(axum::Json(
        state.services.audit().list(&caller, filter).await?,
    ))
}
