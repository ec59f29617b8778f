//! Teams, and for each team its alert sources and routing rules (read-only here; they
//! are created over the API for now).

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use snowbound_core::Team;
use uuid::Uuid;

use super::incidents::{visible_teams, Done};
use super::layout::{ok, render, when, Page, UiResult};
use super::session::{Posted, UiUser};
use crate::error::ApiError;
use crate::routes::teams::create_team;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/teams", get(list).post(create))
        .route("/teams/{id}/sources", get(sources))
        .route("/teams/{id}/rules", get(rules))
}

#[derive(Template)]
#[template(path = "teams.html")]
struct TeamsPage {
    page: Page,
    teams: Vec<Team>,
    error: Option<String>,
    name: String,
}

async fn list(State(state): State<AppState>, user: UiUser, Query(done): Query<Done>) -> UiResult {
    Ok(ok(&TeamsPage {
        page: Page::new("Teams", "teams", &user).with_notice(done.done.as_deref()),
        teams: visible_teams(&state, &user.caller()).await?,
        error: None,
        name: String::new(),
    }))
}

async fn create(State(state): State<AppState>, Posted { user, form }: Posted) -> UiResult {
    let caller = user.caller();
    match create_team(&state, &caller, &form.text("name")).await {
        Ok(_) => Ok(Redirect::to("/teams?done=created").into_response()),
        Err(e) => Ok(render(
            e.status,
            &TeamsPage {
                page: Page::new("Teams", "teams", &user),
                teams: visible_teams(&state, &caller).await?,
                error: Some(e.message),
                name: form.text("name"),
            },
        )),
    }
}

async fn team(state: &AppState, user: &UiUser, id: Uuid) -> UiResult<Team> {
    if !user.caller().sees_team(id) {
        return Err(ApiError::not_found("team").into());
    }
    match state.store.get_team(id).await {
        Ok(team) => Ok(team),
        Err(snowbound_store::StoreError::NotFound) => Err(ApiError::not_found("team").into()),
        Err(e) => Err(e.into()),
    }
}

pub struct SourceRow {
    name: String,
    kind: String,
    severity_map: String,
    created: String,
}

#[derive(Template)]
#[template(path = "team_sources.html")]
struct SourcesPage {
    page: Page,
    team: Team,
    rows: Vec<SourceRow>,
}

async fn sources(State(state): State<AppState>, user: UiUser, Path(id): Path<Uuid>) -> UiResult {
    let team = team(&state, &user, id).await?;
    let rows = state
        .store
        .list_sources(Some(&[id]))
        .await?
        .into_iter()
        .map(|s| SourceRow {
            name: s.name,
            kind: serde_json::to_value(s.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            severity_map: s
                .severity_map
                .iter()
                .map(|(word, severity)| format!("{word} → {severity}"))
                .collect::<Vec<_>>()
                .join(", "),
            created: when(&s.created_at),
        })
        .collect();
    Ok(ok(&SourcesPage {
        page: Page::new(format!("{} · Sources", team.name), "teams", &user),
        team,
        rows,
    }))
}

pub struct RuleRow {
    position: i64,
    name: String,
    when: String,
    then: String,
}

#[derive(Template)]
#[template(path = "team_rules.html")]
struct RulesPage {
    page: Page,
    team: Team,
    rows: Vec<RuleRow>,
}

async fn rules(State(state): State<AppState>, user: UiUser, Path(id): Path<Uuid>) -> UiResult {
    let team = team(&state, &user, id).await?;
    let names: HashMap<Uuid, String> = state
        .store
        .list_integrations()
        .await?
        .into_iter()
        .map(|r| (r.integration.id, r.integration.display_name))
        .collect();
    let name_of = |ids: &[Uuid]| {
        ids.iter()
            .map(|i| names.get(i).cloned().unwrap_or_else(|| i.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut rules = state.store.list_routing_rules(Some(&[id])).await?;
    rules.sort_by_key(|r| (r.position, r.created_at));
    let rows = rules
        .into_iter()
        .map(|r| {
            let mut when = Vec::new();
            if let Some(severities) = &r.when.severity {
                let list: Vec<&str> = severities.iter().map(|s| s.as_str()).collect();
                when.push(format!("severity is {}", list.join(" or ")));
            }
            for (key, matcher) in &r.when.attributes {
                let shown = serde_json::to_string(matcher).unwrap_or_default();
                when.push(format!("attribute {key} matches {shown}"));
            }
            if let Some(text) = &r.when.title_contains {
                when.push(format!("title contains “{text}”"));
            }
            let mut then = Vec::new();
            if !r.then.forward_to.is_empty() {
                then.push(format!("forward to {}", name_of(&r.then.forward_to)));
            }
            if !r.then.exclude_from.is_empty() {
                then.push(format!("exclude from {}", name_of(&r.then.exclude_from)));
            }
            if r.then.stop {
                then.push("stop".into());
            }
            RuleRow {
                position: r.position,
                name: r.name,
                when: if when.is_empty() {
                    "every incident".into()
                } else {
                    when.join("; ")
                },
                then: then.join("; "),
            }
        })
        .collect();
    Ok(ok(&RulesPage {
        page: Page::new(format!("{} · Routing rules", team.name), "teams", &user),
        team,
        rows,
    }))
}
