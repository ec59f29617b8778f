//! The Users page (administrators only): who may log in, with which teams; create a
//! user, reset a password, delete a user. Deleting a user or resetting their password
//! ends their sessions in the same store transaction, so it takes effect at once.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use snowbound_core::Team;
use snowbound_services::accounts::{AccessChange, NewUser, MIN_PASSWORD_CHARS};
use uuid::Uuid;

use super::incidents::Done;
use super::layout::{error_page, render, when, Page, UiResult};
use super::session::{FormData, Posted, UiUser};
use super::typed::Typed;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}/password", post(reset_password))
        .route("/users/{id}/delete", post(delete))
        .route("/users/{id}/access", post(change_access))
        .route("/users/{id}/unlock", post(unlock))
}

pub struct UserRow {
    id: Uuid,
    email: String,
    is_admin: bool,
    teams: String,
    team_ids: Vec<Uuid>,
    created: String,
    is_me: bool,
}

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage {
    page: Page,
    rows: Vec<UserRow>,
    teams: Vec<Team>,
    min_password: usize,
    form: Typed,
}

/// Non-admins get a page saying so; the user list is not theirs to see.
fn not_admin(user: &UiUser) -> Option<Response> {
    (!user.user.is_admin).then(|| {
        error_page(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Only administrators manage users.",
            Some(user),
        )
    })
}

async fn page(
    state: &AppState,
    user: &UiUser,
    form: Typed,
    status: StatusCode,
    done: Option<&str>,
) -> UiResult {
    let teams = state.store.list_teams().await?;
    let names: HashMap<Uuid, &str> = teams.iter().map(|t| (t.id, t.name.as_str())).collect();
    let rows = state
        .services
        .accounts()
        .list()
        .await?
        .into_iter()
        .map(|u| UserRow {
            id: u.id,
            is_me: u.id == user.user.id,
            teams: if u.is_admin {
                "all (administrator)".into()
            } else {
                let list: Vec<&str> = u
                    .team_ids
                    .iter()
                    .filter_map(|t| names.get(t).copied())
                    .collect();
                if list.is_empty() {
                    "none".into()
                } else {
                    list.join(", ")
                }
            },
            team_ids: u.team_ids,
            email: u.email,
            is_admin: u.is_admin,
            created: when(&u.created_at),
        })
        .collect();
    Ok(render(
        status,
        &UsersPage {
            page: Page::new("Users", "users", user).with_notice(done),
            rows,
            teams,
            min_password: MIN_PASSWORD_CHARS,
            form,
        },
    ))
}

async fn list(State(state): State<AppState>, user: UiUser, Query(done): Query<Done>) -> UiResult {
    if let Some(refused) = not_admin(&user) {
        return Ok(refused);
    }
    page(
        &state,
        &user,
        Typed::default(),
        StatusCode::OK,
        done.done.as_deref(),
    )
    .await
}

async fn create(State(state): State<AppState>, Posted { user, form }: Posted) -> UiResult {
    if let Some(refused) = not_admin(&user) {
        return Ok(refused);
    }
    let new = NewUser {
        email: form.text("email"),
        password: form.get("password").unwrap_or_default().to_owned(),
        is_admin: form.get("is_admin").is_some(),
        team_ids: form.ids("team_ids"),
    };
    let result = state
        .services
        .accounts()
        .create(&user.user.email, new)
        .await
        .map_err(ApiError::from);
    match result {
        Ok(_) => Ok(Redirect::to("/users?done=created").into_response()),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let mut values = form;
            values.0.retain(|(k, _)| k != "password");
            let form = Typed::refused_in_words(values, &e);
            page(&state, &user, form, e.status, None).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn reset_password(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    if let Some(refused) = not_admin(&user) {
        return Ok(refused);
    }
    let password = form.get("password").unwrap_or_default();
    // An admin resetting their own password stays logged in here; every other session
    // of the account ends.
    let keep = (id == user.user.id).then_some(user.session_id.as_str());
    let accounts = state.services.accounts();
    match accounts
        .reset_password(&user.user.email, id, password, keep)
        .await
        .map_err(ApiError::from)
    {
        Ok(()) => Ok(Redirect::to("/users?done=password").into_response()),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let mut form = Typed::refused_in_words(FormData::default(), &e);
            // The error shows next to this user's password field.
            for error in &mut form.errors {
                error.field = format!("password-{id}");
            }
            page(&state, &user, form, e.status, None).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, .. }: Posted,
) -> UiResult {
    if let Some(refused) = not_admin(&user) {
        return Ok(refused);
    }
    match state
        .services
        .accounts()
        .delete(&user.user.email, user.user.id, id)
        .await
    {
        Ok(()) => Ok(Redirect::to("/users?done=deleted").into_response()),
        Err(e) => {
            let e = ApiError::from(e);
            if e.status != StatusCode::CONFLICT {
                return Err(e.into());
            }
            let form = Typed::refused(FormData::default(), &e);
            page(&state, &user, form, e.status, None).await
        }
    }
}

impl UserRow {
    fn sees(&self, team: &Uuid) -> bool {
        self.team_ids.contains(team)
    }
}

async fn change_access(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    if let Some(refused) = not_admin(&user) {
        return Ok(refused);
    }
    let change = AccessChange {
        is_admin: Some(form.get("is_admin").is_some()),
        team_ids: Some(form.ids("team_ids")),
    };
    let result = state
        .services
        .accounts()
        .update_access(&user.user.email, Some(user.user.id), id, change)
        .await;
    match result.map_err(ApiError::from) {
        Ok(_) => Ok(Redirect::to("/users?done=access").into_response()),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND => {
            let form = Typed::refused_in_words(FormData::default(), &e);
            page(&state, &user, form, e.status, None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Ends the user's login wait (their account's count; addresses stay counted).
async fn unlock(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, .. }: Posted,
) -> UiResult {
    if let Some(refused) = not_admin(&user) {
        return Ok(refused);
    }
    let accounts = state.services.accounts();
    let target = accounts.get(id).await?;
    accounts.reset_login_limits(Some(&target.email)).await?;
    Ok(Redirect::to("/users?done=unlocked").into_response())
}
