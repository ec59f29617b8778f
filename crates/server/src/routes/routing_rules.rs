//! Routing rules: per team, ordered by `position`; `when` conditions decide, `then`
//! forwards to or excludes from integrations. Rules act on incidents as they open and
//! change from now on; saving a rule does not sweep existing incidents.
//!
//! ```json
//! {"team_id": "…", "name": "criticals to ServiceNow", "position": 10,
//!  "when": {"severity": ["critical"], "title_contains": "db",
//!           "attributes": {"env": "prod", "host": {"regex": "^db-"}, "svc": {"contains": "pay"}}},
//!  "then": {"forward_to": ["<integration id>"], "exclude_from": [], "stop": false}}
//! ```

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use snowbound_core::new_id;
use snowbound_core::routing::{validate_conditions, Actions, Conditions, RoutingRule};
use snowbound_core::validate::limits;
use snowbound_store::StoreError;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{check_field, ApiError, ApiResult};
use crate::extract::{from_value, Json, Path, Query};
use crate::state::AppState;

const NAME_MAX_CHARS: usize = limits::NAME;
const MAX_TARGETS: usize = 50;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub team_id: Uuid,
    pub name: String,
    /// Default: after the team's last rule.
    #[serde(default)]
    pub position: Option<i64>,
    #[serde(default)]
    pub when: Conditions,
    pub then: Actions,
}

/// The rule if the caller may see it; other teams' rules do not exist.
async fn visible(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<RoutingRule> {
    match state.store.get_routing_rule(id).await {
        Ok(rule) if caller.sees_team(rule.team_id) => Ok(rule),
        Ok(_) | Err(StoreError::NotFound) => Err(ApiError::not_found("routing rule")),
        Err(e) => Err(e.into()),
    }
}

fn checked_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid_field("name", "is required"));
    }
    check_field("name", name, NAME_MAX_CHARS)?;
    Ok(name.to_owned())
}

/// A rule may only name integrations that serve its team: forwarding elsewhere would
/// leak the incident to another team, and excluding elsewhere means nothing.
async fn check_targets(state: &AppState, team_id: Uuid, then: &Actions) -> ApiResult<()> {
    if then.forward_to.is_empty() && then.exclude_from.is_empty() && !then.stop {
        return Err(ApiError::invalid_field(
            "then",
            "must forward_to or exclude_from at least one integration, or stop",
        ));
    }
    let integrations = state.store.list_integrations().await?;
    for (list, ids) in [
        ("forward_to", &then.forward_to),
        ("exclude_from", &then.exclude_from),
    ] {
        if ids.len() > MAX_TARGETS {
            return Err(ApiError::invalid_field(
                format!("then.{list}"),
                format!("names more than {MAX_TARGETS} integrations"),
            ));
        }
        for (index, id) in ids.iter().enumerate() {
            let serves = integrations
                .iter()
                .any(|r| r.integration.id == *id && r.integration.serves_team(team_id));
            if !serves {
                return Err(ApiError::invalid_field(
                    format!("then.{list}[{index}]"),
                    format!("no integration {id} serves the rule's team"),
                ));
            }
        }
    }
    Ok(())
}

async fn checked(state: &AppState, caller: &Caller, input: &RuleInput) -> ApiResult<String> {
    let name = checked_name(&input.name)?;
    if !caller.sees_team(input.team_id) {
        return Err(ApiError::invalid_field("team_id", "no such team"));
    }
    match state.store.get_team(input.team_id).await {
        Ok(_) => {}
        Err(StoreError::NotFound) => {
            return Err(ApiError::invalid_field("team_id", "no such team"))
        }
        Err(e) => return Err(e.into()),
    }
    let errors = validate_conditions(&input.when);
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    check_targets(state, input.team_id, &input.then).await?;
    Ok(name)
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<RuleInput>,
) -> ApiResult<impl IntoResponse> {
    let rule = create_rule(&state, &caller, input).await?;
    Ok((StatusCode::CREATED, axum::Json(rule)))
}

/// Creates a rule; the API and the web UI's Routing rules page both call this.
pub(crate) async fn create_rule(
    state: &AppState,
    caller: &Caller,
    input: RuleInput,
) -> ApiResult<RoutingRule> {
    let name = checked(state, caller, &input).await?;
    let position = match input.position {
        Some(position) => position,
        None => state
            .store
            .list_routing_rules(Some(&[input.team_id]))
            .await?
            .iter()
            .map(|r| r.position + 1)
            .max()
            .unwrap_or(0),
    };
    let now = Utc::now();
    let rule = RoutingRule {
        id: new_id(),
        team_id: input.team_id,
        name,
        position,
        when: input.when,
        then: input.then,
        created_at: now,
        updated_at: now,
    };
    state.store.create_routing_rule(&rule).await?;
    Ok(rule)
}

/// In evaluation order; `?team_id=` narrows to one team.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    mut query: Query,
) -> ApiResult<impl IntoResponse> {
    let team_id: Option<Uuid> = query.parse("team_id")?;
    query.finish()?;
    let teams = match team_id {
        Some(team) if !caller.sees_team(team) => return Ok(axum::Json(Vec::new())),
        Some(team) => Some(vec![team]),
        None => caller.team_filter(),
    };
    let rules = state.store.list_routing_rules(teams.as_deref()).await?;
    Ok(axum::Json(rules))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(visible(&state, &caller, id).await?))
}

/// A JSON merge patch over the rule (`null` removes a condition); the result is
/// validated as a whole, like a new rule.
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(patch): Json<Value>,
) -> ApiResult<impl IntoResponse> {
    Ok(axum::Json(update_rule(&state, &caller, id, patch).await?))
}

/// Applies a merge patch to a rule; the API's PATCH and the web UI's reordering call this.
pub(crate) async fn update_rule(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    patch: Value,
) -> ApiResult<RoutingRule> {
    let current = visible(state, caller, id).await?;
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
    merge_patch(&mut merged, patch);
    let input: RuleInput = from_value(merged)?;
    if input.team_id != current.team_id {
        return Err(ApiError::invalid_field(
            "team_id",
            "a rule stays in its team; create one in the other team instead",
        ));
    }
    let name = checked(state, caller, &input).await?;
    let rule = RoutingRule {
        name,
        position: input.position.unwrap_or(current.position),
        when: input.when,
        then: input.then,
        updated_at: Utc::now(),
        ..current
    };
    state
        .store
        .update_routing_rule(&rule)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found("routing rule"),
            other => other.into(),
        })?;
    Ok(rule)
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    delete_rule(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn delete_rule(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<()> {
    visible(state, caller, id).await?;
    match state.store.delete_routing_rule(id).await {
        Ok(()) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// RFC 7386: objects merge key by key, `null` deletes, anything else replaces.
fn merge_patch(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge_patch(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch,
    }
}
