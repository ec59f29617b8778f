//! Teams: the list with links to each team's sources and routing rules (see
//! `sources.rs`, `rules.rs`), and creating a team.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use snowbound_core::Team;
use uuid::Uuid;

use super::incidents::{visible_teams, Done};
use super::layout::{ok, render, Page, UiResult};
use super::session::{Posted, UiUser};
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/teams", get(list).post(create))
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
    match state
        .services
        .teams()
        .create(&caller, &form.text("name"))
        .await
    {
        Ok(_) => Ok(Redirect::to("/teams?done=created").into_response()),
        Err(e) => {
            let e = ApiError::from(e);
            Ok(render(
                e.status,
                &TeamsPage {
                    page: Page::new("Teams", "teams", &user),
                    teams: visible_teams(&state, &caller).await?,
                    error: Some(e.message),
                    name: form.text("name"),
                },
            ))
        }
    }
}

pub(super) async fn team(state: &AppState, user: &UiUser, id: Uuid) -> UiResult<Team> {
    Ok(state.services.teams().visible(&user.caller(), id).await?)
}
