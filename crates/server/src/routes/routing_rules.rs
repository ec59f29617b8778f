//! Routing rules: per team, ordered by `position`; `when` conditions decide, `then`
//! forwards to or excludes from integrations. Rules act on incidents as they open and
//! change from now on; saving a rule does not sweep existing incidents.
//!
//! ```json
//! {"team_id": "…", "name": "criticals to ServiceNow", "position": 10,
//!  "when": {"severity": ["critical"], "title_contains": "db", "status": ["open"],
//!           "source_ids": ["<source id>"], "match": "all",
//!           "attributes": {"env": "prod", "host": {"regex": "^db-"}, "load": {"gte": "90"}},
//!           "time_window": {"days": ["mon", "fri"], "from": "08:00", "to": "18:00",
//!                           "time_zone": "Europe/Berlin"}},
//!  "then": {"forward_to": ["<integration id>"], "exclude_from": [], "stop": false,
//!           "set_severity": "critical", "set_attributes": {"tier": "1"},
//!           "delay_seconds": 300, "discard": false}}
//! ```
//!
//! `POST /api/v1/routing-rules/reorder {team_id, rule_ids}` renumbers a team's rules in
//! one transaction; `GET /api/v1/routing-history?team_id=&limit=` lists what rules did,
//! newest first.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{json, Value};
use snowbound_core::routing::RoutingRule;
use snowbound_services::rules::RuleInput;
use snowbound_store::RuleFiring;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{from_value, Json, Path, Query};
use crate::routes::merge_patch::merge_patch_value;
use crate::state::AppState;

#[utoipa::path(post, operation_id = "routing_rules_create", path = "/routing-rules", tag = "routing-rules",
    request_body = RuleInput,
    responses((status = 201, description = "The rule", body = RoutingRule)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<RuleInput>,
) -> ApiResult<impl IntoResponse> {
    let rule = state.services.rules().create(&caller, input).await?;
    Ok((StatusCode::CREATED, axum::Json(rule)))
}

#[utoipa::path(get, operation_id = "routing_rules_list", path = "/routing-rules", tag = "routing-rules",
    params(("team_id" = Option<Uuid>, Query, description = "Only this team's")),
    responses((status = 200, description = "The rules in evaluation order", body = Vec<RoutingRule>)))]
/// In evaluation order; `?team_id=` narrows to one team.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    mut query: Query,
) -> ApiResult<impl IntoResponse> {
    let team_id: Option<Uuid> = query.parse("team_id")?;
    query.finish()?;
    let rules = state.services.rules().list(&caller, team_id).await?;
    Ok(axum::Json(rules))
}

#[utoipa::path(get, operation_id = "routing_rules_get", path = "/routing-rules/{id}", tag = "routing-rules",
    params(("id" = Uuid, Path, description = "The rule's id")),
    responses((status = 200, description = "The rule", body = RoutingRule)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(
        state.services.rules().visible(&caller, id).await?,
    ))
}

#[utoipa::path(patch, operation_id = "routing_rules_patch", path = "/routing-rules/{id}", tag = "routing-rules",
    params(("id" = Uuid, Path, description = "The rule's id")),
    request_body(content = Object, description = "An RFC 7386 merge patch over `RuleInput` \
        (`null` removes a condition), checked as a whole"),
    responses((status = 200, description = "The rule", body = RoutingRule)))]
/// A JSON merge patch over the rule (`null` removes a condition); the result is
/// validated as a whole, like a new rule.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(patch): Json<Value>,
) -> ApiResult<impl IntoResponse> {
    let service = state.services.rules();
    let current = service.visible(&caller, id).await?;
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "invalid_body",
            "a PATCH body is a JSON object",
        ));
    }
    let mut merged = json!({
        "team_id": current.team_id,
        "name": current.name,
        "position": current.position,
        "when": current.when,
        "then": current.then,
    });
    merge_patch_value(&mut merged, patch);
    let input: RuleInput = from_value(merged)?;
    Ok(axum::Json(service.update(&caller, id, input).await?))
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reorder {
    team_id: Uuid,
    rule_ids: Vec<Uuid>,
}

#[utoipa::path(post, operation_id = "routing_rules_reorder", path = "/routing-rules/reorder", tag = "routing-rules",
    description = "The team's rules in the order given (every rule of the team exactly once), in one transaction.",
    request_body = Reorder,
    responses((status = 200, description = "The team's rules in their new order", body = Vec<RoutingRule>)))]
/// The team's rules in the order given (every rule once), in one transaction; answers
/// them in their new order.
pub async fn reorder(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<Reorder>,
) -> ApiResult<impl IntoResponse> {
    let rules = state
        .services
        .rules()
        .reorder(&caller, body.team_id, &body.rule_ids)
        .await?;
    Ok(axum::Json(rules))
}

#[utoipa::path(get, operation_id = "routing_history", path = "/routing-history", tag = "routing-rules",
    description = "What routing rules did to which incident, newest first, for the teams the caller sees.",
    params(
        ("team_id" = Option<Uuid>, Query, description = "Only this team's"),
        ("limit" = Option<u32>, Query, description = "At most this many (default 100)"),
    ),
    responses((status = 200, description = "Rule firings, newest first", body = Vec<RuleFiring>)))]
/// What routing rules did, newest first: `?team_id=` one team, `?limit=` (default 100).
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    mut query: Query,
) -> ApiResult<impl IntoResponse> {
    let team_id: Option<Uuid> = query.parse("team_id")?;
    let limit: Option<u32> = query.parse("limit")?;
    query.finish()?;
    let history = state
        .services
        .rules()
        .history(&caller, team_id, limit)
        .await?;
    Ok(axum::Json(history))
}

#[utoipa::path(delete, operation_id = "routing_rules_delete", path = "/routing-rules/{id}", tag = "routing-rules",
    params(("id" = Uuid, Path, description = "The rule's id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    state.services.rules().delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
