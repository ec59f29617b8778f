//! Login, logout and the one-time setup page that creates the first administrator.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::layout::{error_page, render, Page, UiResult};
use super::session::{
    cookie, cookie_value, current_user, login, random_token, Posted, PostedAnonymously,
    PRE_LOGIN_COOKIE, SESSION_COOKIE,
};
use snowbound_services::accounts::Setup;
use snowbound_services::ServiceError;

use crate::client_address::MaybeClientAddress;
use crate::error::retry_after_value;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    page: Page,
    setup: bool,
    error: Option<String>,
    email: String,
    next: String,
}

#[derive(Deserialize, Default)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only paths of this site: `next=//evil.example` or a full URL must not become an
/// open redirect.
fn safe_next(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.starts_with("/\\") {
        next
    } else {
        "/incidents"
    }
}

pub async fn home(State(state): State<AppState>, parts: Parts) -> UiResult {
    let target = if current_user(&parts, &state).await?.is_some() {
        "/incidents"
    } else if state.services.accounts().setup_needed().await? {
        "/setup"
    } else {
        "/login"
    };
    Ok(Redirect::to(target).into_response())
}

/// The form page with a pre-login CSRF cookie (kept if the browser already has one).
fn anonymous_form(
    state: &AppState,
    headers: &HeaderMap,
    status: StatusCode,
    setup: bool,
    error: Option<String>,
    email: String,
    next: &str,
) -> Response {
    let token = cookie_value(headers, PRE_LOGIN_COOKIE)
        .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .unwrap_or_else(random_token);
    let title = if setup { "Set up" } else { "Log in" };
    let mut response = render(
        status,
        &LoginPage {
            page: Page::anonymous(title, token.clone()),
            setup,
            error,
            email,
            next: safe_next(next).to_owned(),
        },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie(state, PRE_LOGIN_COOKIE, &token, 3600),
    );
    response
}

pub async fn login_page(
    State(state): State<AppState>,
    Query(query): Query<NextQuery>,
    parts: Parts,
) -> UiResult {
    if current_user(&parts, &state).await?.is_some() {
        return Ok(Redirect::to("/incidents").into_response());
    }
    if state.services.accounts().setup_needed().await? {
        return Ok(Redirect::to("/setup").into_response());
    }
    let next = query.next.unwrap_or_default();
    Ok(anonymous_form(
        &state,
        &parts.headers,
        StatusCode::OK,
        false,
        None,
        String::new(),
        &next,
    ))
}

/// Sets the session cookie, forgets the pre-login one and goes to `next`.
async fn signed_in(state: &AppState, user: &snowbound_store::User, next: &str) -> UiResult {
    let session = login(state, user).await?;
    let mut response = Redirect::to(safe_next(next)).into_response();
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, session);
    headers.append(header::SET_COOKIE, cookie(state, PRE_LOGIN_COOKIE, "", 0));
    Ok(response)
}

pub async fn login_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    MaybeClientAddress(client): MaybeClientAddress,
    PostedAnonymously { form }: PostedAnonymously,
) -> UiResult {
    let email = form.text("email");
    let password = form.get("password").unwrap_or_default();
    let next = form.text("next");
    let refused = |status, message: String, email| {
        anonymous_form(&state, &headers, status, false, Some(message), email, &next)
    };
    match state
        .services
        .accounts()
        .login(&email, password, client)
        .await
    {
        Ok(Some(user)) => signed_in(&state, &user, &next).await,
        Ok(None) => Ok(refused(
            StatusCode::UNAUTHORIZED,
            "The email or the password is wrong.".into(),
            email,
        )),
        Err(ServiceError::RateLimited {
            retry_after,
            message,
        }) => {
            let mut page = refused(StatusCode::TOO_MANY_REQUESTS, message, email);
            page.headers_mut()
                .insert(header::RETRY_AFTER, retry_after_value(retry_after));
            Ok(page)
        }
        Err(other) => Err(other.into()),
    }
}

fn setup_gone() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "Snowbound is already set up. Log in instead.",
        None,
    )
}

pub async fn setup_page(State(state): State<AppState>, headers: HeaderMap) -> UiResult {
    if !state.services.accounts().setup_needed().await? {
        return Ok(setup_gone());
    }
    Ok(anonymous_form(
        &state,
        &headers,
        StatusCode::OK,
        true,
        None,
        String::new(),
        "/integrations",
    ))
}

pub async fn setup_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    PostedAnonymously { form }: PostedAnonymously,
) -> UiResult {
    if !state.services.accounts().setup_needed().await? {
        return Ok(setup_gone());
    }
    let email = form.text("email");
    let password = form.get("password").unwrap_or_default();
    match state.services.accounts().setup(&email, password).await {
        Ok(Setup::Created(user)) => signed_in(&state, &user, "/integrations").await,
        Ok(Setup::AlreadyDone) => Ok(setup_gone()),
        Err(ServiceError::Invalid(problem)) => Ok(anonymous_form(
            &state,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            true,
            Some(problem.message),
            email,
            "/integrations",
        )),
        Err(e) => Err(e.into()),
    }
}

pub async fn logout(State(state): State<AppState>, Posted { user, .. }: Posted) -> UiResult {
    state.store.delete_session(&user.session_id).await?;
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie(&state, SESSION_COOKIE, "", 0));
    Ok(response)
}
