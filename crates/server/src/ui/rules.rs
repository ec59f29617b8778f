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
use snowbound_core::routing::{Actions, AttributeMatcher, Conditions, RoutingRule};
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
    if let Some(text) = &rule.when.title_contains {
        when.push(format!("title contains “{text}”"));
    }
    for (key, matcher) in &rule.when.attributes {
        when.push(match matcher {
            AttributeMatcher::Equals(v) => format!("{key} = {v}"),
            AttributeMatcher::Contains(v) => format!("{key} contains “{v}”"),
            AttributeMatcher::Regex(v) => format!("{key} matches /{v}/"),
        });
    }
    let mut then = Vec::new();
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
    let when = if when.is_empty() {
        "Every incident".to_owned()
    } else {
        format!("When {}", when.join(" and "))
    };
    format!("{when} → {}", then.join("; "))
}

async fn page(
    state: &AppState,
    user: &UiUser,
    team: Team,
    form: Typed,
    status: StatusCode,
    done: Option<&str>,
    refused_fields: Option<(Uuid, String)>,
) -> UiResult {
    let targets = targets(state, team.id).await?;
    let known: HashMap<Uuid, String> = state
        .store
        .list_integrations()
        .await?
        .into_iter()
        .map(|r| (r.integration.id, r.integration.display_name))
        .collect();
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
        },
    ))
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
        None,
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
            page(&state, &user, team, form, status, None, None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Swaps the rule with its neighbour, then numbers the team's rules 10, 20, 30… in the
/// new order: positions may tie (ties fall back to age), so swapping two numbers alone
/// would not always move a rule.
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
        for (i, r) in rules.iter().enumerate() {
            let position = (i as i64 + 1) * 10;
            rules_service.set_position(&caller, r.id, position).await?;
        }
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
            let why = Some((rule, e.message));
            page(&state, &user, team, Typed::default(), status, None, why).await
        }
        Err(e) => Err(e.into()),
    }
}
