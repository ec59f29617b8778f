//! A team's routing rules: in evaluation order and in words, created from a form, deleted
//! and moved up or down. Every change goes through the rule service, like
//! `/api/v1/routing-rules`, so the page cannot save a rule the API would refuse.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use snowbound_core::routing::{Actions, AttributeMatcher, Conditions, Match, RoutingRule};
use snowbound_core::{Severity, Team};
use snowbound_services::rules::RuleInput;
use snowbound_services::{ServiceError, ServiceResult};
use uuid::Uuid;

use super::incidents::Done;
use super::layout::{render, Page, UiResult};
use super::session::{FormData, Posted, UiUser};
use super::teams::team;
use super::typed::Typed;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/teams/{id}/rules", get(list).post(create))
        .route("/teams/{id}/rules/{rule}/move", post(move_rule))
        .route("/teams/{id}/rules/{rule}/delete", post(delete))
        .route("/teams/{id}/rules/{rule}/fields", post(save_fields))
        .route("/teams/{id}/rules/{rule}/edit", post(edit))
}

/// History rows the rules page shows; the API pages further.
const HISTORY_ROWS: u32 = 50;

/// What the page shows refused in a rule's own form.
pub enum Refused {
    Nothing,
    /// A save of its ServiceNow fields, and why.
    Fields(Uuid, String),
    Edit(RefusedEdit),
}

/// A refused edit, shown again in that rule's form as typed.
pub struct RefusedEdit {
    rule: Uuid,
    message: String,
    name: String,
    when: String,
    then: String,
}

pub struct RuleRow {
    id: Uuid,
    name: String,
    sentence: String,
    first: bool,
    last: bool,
    /// `then.set_fields` as rows, with blank rows to add more.
    set_fields: Vec<(String, String)>,
    /// Why the last save of its fields was refused.
    fields_error: Option<String>,
    /// The edit form: name, `when` and `then` as JSON, and why the last edit was refused.
    edit_name: String,
    when_json: String,
    then_json: String,
    edit_error: Option<String>,
}

pub struct HistoryRow {
    at: String,
    rule_name: String,
    incident_id: Option<Uuid>,
    kind: String,
    detail: String,
}

/// Blank key/value rows under the set ones: adding fields needs no script.
const BLANK_ROWS: usize = 3;

fn with_blank_rows(mut rows: Vec<(String, String)>) -> Vec<(String, String)> {
    rows.extend(std::iter::repeat_n(
        (String::new(), String::new()),
        BLANK_ROWS,
    ));
    rows
}

/// The `set_field`/`set_value` rows of a form, in order, blank rows left out.
fn typed_rows(form: &FormData) -> Vec<(String, String)> {
    let values = form.all("set_value");
    form.all("set_field")
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let v = values.get(i).copied().unwrap_or_default();
            (k.trim().to_owned(), v.to_owned())
        })
        .filter(|(k, v)| !k.is_empty() || !v.is_empty())
        .collect()
}

/// The rows as `then.set_fields`; a row is removed by emptying it.
fn set_fields(form: &FormData) -> ServiceResult<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for (key, value) in typed_rows(form) {
        if key.is_empty() {
            return Err(ServiceError::invalid(
                "then.set_fields",
                format!("the value “{value}” needs a ServiceNow field name"),
            ));
        }
        if map.insert(key.clone(), value).is_some() {
            return Err(ServiceError::invalid(
                "then.set_fields",
                format!("{key} is set twice"),
            ));
        }
    }
    Ok(map)
}

#[derive(Template)]
#[template(path = "team_rules.html")]
struct RulesPage {
    page: Page,
    team: Team,
    rows: Vec<RuleRow>,
    /// Integrations serving the team: the only ones a rule may name.
    targets: Vec<(Uuid, String)>,
    severities: &'static [Severity],
    form: Typed,
    history: Vec<HistoryRow>,
}

impl RulesPage {
    /// The new rule's field rows as typed, with blank rows.
    fn new_rule_fields(&self) -> Vec<(String, String)> {
        with_blank_rows(typed_rows(&self.form.values))
    }
}

async fn targets(state: &AppState, team_id: Uuid) -> UiResult<Vec<(Uuid, String)>> {
    Ok(state
        .store
        .list_integrations()
        .await?
        .into_iter()
        .filter(|r| r.integration.serves_team(team_id))
        .map(|r| (r.integration.id, r.integration.display_name))
        .collect())
}

fn names(ids: &[Uuid], known: &HashMap<Uuid, String>) -> String {
    ids.iter()
        .map(|i| known.get(i).cloned().unwrap_or_else(|| i.to_string()))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// "When severity is critical and env = prod → forward to ServiceNow".
pub fn sentence(rule: &RoutingRule, known: &HashMap<Uuid, String>) -> String {
    let mut when = Vec::new();
    if let Some(severities) = &rule.when.severity {
        let list: Vec<&str> = severities.iter().map(|s| s.as_str()).collect();
        when.push(format!("severity is {}", list.join(" or ")));
    }
    if let Some(statuses) = &rule.when.status {
        let list: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
        when.push(format!("status is {}", list.join(" or ")));
    }
    if let Some(sources) = &rule.when.source_ids {
        when.push(format!("it came from {}", names(sources, known)));
    }
    if let Some(text) = &rule.when.title_contains {
        when.push(format!("title contains “{text}”"));
    }
    for (key, matcher) in &rule.when.attributes {
        when.push(match matcher {
            AttributeMatcher::Regex(v) => format!("{key} matches /{v}/"),
            AttributeMatcher::Contains(v) | AttributeMatcher::NotContains(v) => {
                format!("{key} {} “{v}”", matcher.symbol())
            }
            other => format!("{key} {} {}", other.symbol(), other.parts().1),
        });
    }
    let mut then = Vec::new();
    if rule.then.discard {
        then.push("discard the alert".to_owned());
    }
    if let Some(severity) = rule.then.set_severity {
        then.push(format!("set severity to {severity}"));
    }
    for (key, value) in &rule.then.set_attributes {
        then.push(format!("set attribute {key} to “{value}”"));
    }
    if let Some(seconds) = rule.then.delay_seconds {
        then.push(format!("wait {seconds} s before sending"));
    }
    if !rule.then.forward_to.is_empty() {
        then.push(format!(
            "forward to {}",
            names(&rule.then.forward_to, known)
        ));
    }
    if !rule.then.exclude_from.is_empty() {
        then.push(format!(
            "exclude from {}",
            names(&rule.then.exclude_from, known)
        ));
    }
    for (field, value) in &rule.then.set_fields {
        then.push(format!("set {field} to “{value}”"));
    }
    if rule.then.stop {
        then.push("skip the rules below".into());
    }
    let joiner = match rule.when.combine {
        Match::All => " and ",
        Match::Any => " or ",
    };
    let mut when = if when.is_empty() {
        "Every incident".to_owned()
    } else {
        format!("When {}", when.join(joiner))
    };
    if let Some(window) = &rule.when.time_window {
        when.push_str(&format!(", within {}", window.describe()));
    }
    format!("{when} → {}", then.join("; "))
}

async fn page(
    state: &AppState,
    user: &UiUser,
    team: Team,
    form: Typed,
    status: StatusCode,
    done: Option<&str>,
    refused: Refused,
) -> UiResult {
    let (refused_fields, refused_edit) = match refused {
        Refused::Nothing => (None, None),
        Refused::Fields(rule, why) => (Some((rule, why)), None),
        Refused::Edit(edit) => (None, Some(edit)),
    };
    let targets = targets(state, team.id).await?;
    // Rules name integrations and sources by id; sentences name them by name.
    let mut known: HashMap<Uuid, String> = state
        .store
        .list_integrations()
        .await?
        .into_iter()
        .map(|r| (r.integration.id, r.integration.display_name))
        .collect();
    known.extend(
        state
            .store
            .list_sources(Some(&[team.id]))
            .await?
            .into_iter()
            .map(|s| (s.id, format!("source {}", s.name))),
    );
    let rules = state
        .services
        .rules()
        .ordered(&user.caller(), team.id)
        .await?;
    let count = rules.len();
    let rows = rules
        .iter()
        .enumerate()
        .map(|(i, r)| RuleRow {
            id: r.id,
            name: r.name.clone(),
            sentence: sentence(r, &known),
            first: i == 0,
            last: i + 1 == count,
            set_fields: with_blank_rows(
                r.then
                    .set_fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            fields_error: refused_fields
                .as_ref()
                .filter(|(rule, _)| *rule == r.id)
                .map(|(_, why)| why.clone()),
            ..edit_form(r, refused_edit.as_ref())
        })
        .collect();
    let history = state
        .services
        .rules()
        .history(&user.caller(), Some(team.id), Some(HISTORY_ROWS))
        .await?
        .into_iter()
        .map(|f| HistoryRow {
            at: f.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            rule_name: f.rule_name,
            incident_id: f.incident_id,
            kind: f.kind,
            detail: f.detail,
        })
        .collect();
    Ok(render(
        status,
        &RulesPage {
            page: Page::new(format!("{} · Routing rules", team.name), "teams", user)
                .with_notice(done),
            team,
            rows,
            targets,
            severities: Severity::ALL,
            form,
            history,
        },
    ))
}

/// The edit form's values: the rule as stored, or the refused edit as typed.
fn edit_form(rule: &RoutingRule, refused: Option<&RefusedEdit>) -> RuleRow {
    let pretty =
        |value: serde_json::Value| serde_json::to_string_pretty(&value).unwrap_or_default();
    let (edit_name, when_json, then_json, edit_error) = match refused.filter(|e| e.rule == rule.id)
    {
        Some(e) => (
            e.name.clone(),
            e.when.clone(),
            e.then.clone(),
            Some(e.message.clone()),
        ),
        None => (
            rule.name.clone(),
            pretty(serde_json::json!(rule.when)),
            pretty(serde_json::json!(rule.then)),
            None,
        ),
    };
    RuleRow {
        id: rule.id,
        name: rule.name.clone(),
        sentence: String::new(),
        first: false,
        last: false,
        set_fields: Vec::new(),
        fields_error: None,
        edit_name,
        when_json,
        then_json,
        edit_error,
    }
}

async fn list(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<Uuid>,
    Query(done): Query<Done>,
) -> UiResult {
    let team = team(&state, &user, id).await?;
    let status = StatusCode::OK;
    page(
        &state,
        &user,
        team,
        Typed::default(),
        status,
        done.done.as_deref(),
        Refused::Nothing,
    )
    .await
}

/// One condition per line: `key=value` (equals), `key~text` (contains), `key=~regex`.
fn attribute_lines(text: &str) -> ServiceResult<BTreeMap<String, AttributeMatcher>> {
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let problem =
            |why: &str| ServiceError::invalid("when.attributes", format!("line {}: {why}", n + 1));
        let Some(at) = line.find(['=', '~']) else {
            return Err(problem("write key=value, key~text or key=~regex"));
        };
        let (key, rest) = (line[..at].trim(), &line[at..]);
        let matcher = if let Some(regex) = rest.strip_prefix("=~") {
            AttributeMatcher::Regex(regex.trim().to_owned())
        } else if let Some(text) = rest.strip_prefix('~') {
            AttributeMatcher::Contains(text.trim().to_owned())
        } else {
            AttributeMatcher::Equals(rest[1..].trim().to_owned())
        };
        if key.is_empty() {
            return Err(problem("the attribute name is missing"));
        }
        if map.insert(key.to_owned(), matcher).is_some() {
            return Err(problem(&format!("{key} has a condition already")));
        }
    }
    Ok(map)
}

fn conditions(form: &FormData) -> ServiceResult<Conditions> {
    let severities: Vec<Severity> = form
        .all("severity")
        .into_iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let title = form.text("title_contains");
    Ok(Conditions {
        severity: (!severities.is_empty()).then_some(severities),
        attributes: attribute_lines(form.get("attributes").unwrap_or_default())?,
        title_contains: (!title.is_empty()).then_some(title),
        ..Conditions::default()
    })
}

async fn create(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    let team = team(&state, &user, id).await?;
    let result = async {
        let input = RuleInput {
            team_id: team.id,
            name: form.text("name"),
            position: None,
            when: conditions(&form)?,
            then: Actions {
                forward_to: form.ids("forward_to"),
                exclude_from: form.ids("exclude_from"),
                stop: form.get("stop").is_some(),
                set_fields: set_fields(&form)?,
                ..Actions::default()
            },
        };
        state.services.rules().create(&user.caller(), input).await
    }
    .await
    .map_err(ApiError::from);
    match result {
        Ok(_) => Ok(Redirect::to(&format!("/teams/{id}/rules?done=created")).into_response()),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND => {
            let status = e.status;
            let form = Typed::refused(form, &e);
            page(&state, &user, team, form, status, None, Refused::Nothing).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Swaps the rule with its neighbour, then renumbers the team's rules in the new order in
/// one transaction (the API's reorder): positions may tie (ties fall back to age), so
/// swapping two numbers alone would not always move a rule.
async fn move_rule(
    State(state): State<AppState>,
    Path((id, rule)): Path<(Uuid, Uuid)>,
    Posted { user, form }: Posted,
) -> UiResult {
    let rules_service = state.services.rules();
    let caller = user.caller();
    // A form of one team's page must not act on another team's rule.
    rules_service.of_team(&caller, id, rule).await?;
    let mut rules = rules_service.ordered(&caller, id).await?;
    let Some(at) = rules.iter().position(|r| r.id == rule) else {
        return Err(ServiceError::not_found("routing rule").into());
    };
    let other = match form.text("direction").as_str() {
        "up" => at.checked_sub(1),
        "down" => Some(at + 1).filter(|&i| i < rules.len()),
        _ => return Err(ServiceError::invalid("direction", "is up or down").into()),
    };
    if let Some(other) = other {
        rules.swap(at, other);
        let order: Vec<Uuid> = rules.iter().map(|r| r.id).collect();
        rules_service.reorder(&caller, id, &order).await?;
    }
    Ok(Redirect::to(&format!("/teams/{id}/rules?done=moved#rule-{rule}")).into_response())
}

async fn delete(
    State(state): State<AppState>,
    Path((id, rule)): Path<(Uuid, Uuid)>,
    Posted { user, .. }: Posted,
) -> UiResult {
    let rules_service = state.services.rules();
    let caller = user.caller();
    rules_service.of_team(&caller, id, rule).await?;
    rules_service.delete(&caller, rule).await?;
    Ok(Redirect::to(&format!("/teams/{id}/rules?done=deleted")).into_response())
}

/// A rule's `then.set_fields` replaced by the rows of its form; the rest of the rule is
/// kept. A refusal is shown in that rule's form.
async fn save_fields(
    State(state): State<AppState>,
    Path((id, rule)): Path<(Uuid, Uuid)>,
    Posted { user, form }: Posted,
) -> UiResult {
    let rules_service = state.services.rules();
    let caller = user.caller();
    let current = rules_service.of_team(&caller, id, rule).await?;
    let result = async {
        let mut input = RuleInput::from(&current);
        input.then.set_fields = set_fields(&form)?;
        rules_service.update(&caller, rule, input).await
    }
    .await
    .map_err(ApiError::from);
    match result {
        Ok(_) => {
            Ok(Redirect::to(&format!("/teams/{id}/rules?done=saved#rule-{rule}")).into_response())
        }
        Err(e) if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND => {
            let team = team(&state, &user, id).await?;
            let status = e.status;
            let why = Refused::Fields(rule, e.message);
            page(&state, &user, team, Typed::default(), status, None, why).await
        }
        Err(e) => Err(e.into()),
    }
}

/// A rule's name, conditions and actions replaced from its edit form, where `when` and
/// `then` are the API's JSON; validated like the API's PATCH. A refusal is shown in that
/// rule's form as typed, naming the field.
async fn edit(
    State(state): State<AppState>,
    Path((id, rule)): Path<(Uuid, Uuid)>,
    Posted { user, form }: Posted,
) -> UiResult {
    let rules_service = state.services.rules();
    let caller = user.caller();
    let current = rules_service.of_team(&caller, id, rule).await?;
    let (name, when, then) = (form.text("name"), form.text("when"), form.text("then"));
    let result = async {
        let parse = |field: &str, text: &str| -> Result<serde_json::Value, ApiError> {
            let text = if text.trim().is_empty() { "{}" } else { text };
            serde_json::from_str(text)
                .map_err(|e| ApiError::from(ServiceError::invalid(field, format!("not JSON: {e}"))))
        };
        let body = serde_json::json!({
            "team_id": current.team_id,
            "name": name,
            "position": current.position,
            "when": parse("when", &when)?,
            "then": parse("then", &then)?,
        });
        let input: RuleInput = crate::extract::from_value(body)?;
        rules_service
            .update(&caller, rule, input)
            .await
            .map_err(ApiError::from)
    }
    .await;
    match result {
        Ok(_) => {
            Ok(Redirect::to(&format!("/teams/{id}/rules?done=saved#rule-{rule}")).into_response())
        }
        Err(e) if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND => {
            let team = team(&state, &user, id).await?;
            let status = e.status;
            let message = match &e.field {
                Some(field) => format!("{field}: {}", e.message),
                None => e.message.clone(),
            };
            let refused = RefusedEdit {
                rule,
                message,
                name,
                when,
                then,
            };
            let refused = Refused::Edit(refused);
            page(&state, &user, team, Typed::default(), status, None, refused).await
        }
        Err(e) => Err(e.into()),
    }
}
