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
use snowbound_store::StoreError;
use uuid::Uuid;

use super::incidents::Done;
use super::layout::{error_page, render, when, Page, UiResult};
use super::session::{FormData, Posted, UiUser};
use super::typed::Typed;
use crate::accounts::{check_email, check_password, hash_password, new_user, MIN_PASSWORD_CHARS};
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{id}/password", post(reset_password))
        .route("/users/{id}/delete", post(delete))
}

pub struct UserRow {
    id: Uuid,
    email: String,
    is_admin: bool,
    teams: String,
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
        .store
        .list_users()
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

/// A refusal whose message is already a sentence for the user, shown as it is.
fn refused(field: &str, message: String) -> ApiError {
    let mut e = ApiError::invalid_field(field, message.clone());
    e.message = message;
    e
}

async fn create(State(state): State<AppState>, Posted { user, form }: Posted) -> UiResult {
    if let Some(refused) = not_admin(&user) {
        return Ok(refused);
    }
    let email = form.text("email");
    let password = form.get("password").unwrap_or_default().to_owned();
    let result = async {
        check_email(&email).map_err(|m| refused("email", m))?;
        check_password(&password).map_err(|m| refused("password", m))?;
        let known: Vec<Uuid> = state
            .store
            .list_teams()
            .await?
            .iter()
            .map(|t| t.id)
            .collect();
        let team_ids = form.ids("team_ids");
        if team_ids.iter().any(|t| !known.contains(t)) {
            return Err(refused(
                "team_ids",
                "A chosen team no longer exists.".into(),
            ));
        }
        let is_admin = form.get("is_admin").is_some();
        let account = new_user(&email, &password, is_admin, team_ids);
        state
            .store
            .create_user(&account)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => {
                    refused("email", "A user with this email exists already.".into())
                }
                other => other.into(),
            })
    }
    .await;
    match result {
        Ok(()) => Ok(Redirect::to("/users?done=created").into_response()),
        Err(e) if e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let mut values = form;
            values.0.retain(|(k, _)| k != "password");
            let form = Typed::refused(values, &e, &[]);
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
    if let Err(message) = check_password(password) {
        let e = refused(&format!("password-{id}"), message);
        let form = Typed::refused(FormData::default(), &e, &[]);
        return page(&state, &user, form, e.status, None).await;
    }
    // An admin resetting their own password stays logged in here; every other session
    // of the account ends.
    let keep = (id == user.user.id).then_some(user.session_id.as_str());
    match state
        .store
        .set_user_password(id, &hash_password(password), keep)
        .await
    {
        Ok(()) => Ok(Redirect::to("/users?done=password").into_response()),
        Err(StoreError::NotFound) => Err(ApiError::not_found("user").into()),
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
    // There is always an administrator left: the one doing the deleting.
    if id == user.user.id {
        let e = ApiError::conflict("conflict", "You cannot delete yourself.");
        let form = Typed::refused(FormData::default(), &e, &[]);
        return page(&state, &user, form, e.status, None).await;
    }
    match state.store.delete_user(id).await {
        Ok(()) | Err(StoreError::NotFound) => {
            Ok(Redirect::to("/users?done=deleted").into_response())
        }
        Err(e) => Err(e.into()),
    }
}
