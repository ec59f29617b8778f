//! Logins of the web UI: the session cookie, the signed-in user as an extractor, and the
//! CSRF checks every form POST passes before its handler runs.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use chrono::{Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use snowbound_store::{Session, User};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::layout::{error_page, UiError};
use crate::auth::{Caller, Scope};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "sb_session";
/// Double-submit token for the forms shown before a login (login, setup).
pub const PRE_LOGIN_COOKIE: &str = "sb_csrf";
pub const CSRF_FIELD: &str = "_csrf";
pub const SESSION_HOURS: i64 = 12;

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub fn session_id(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// `Set-Cookie` for a cookie only our pages use: never readable from JavaScript, never
/// sent on cross-site subrequests, `Secure` when users reach us over https.
pub fn cookie(state: &AppState, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if state.public_url().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .expect("cookie values are hex")
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Starts a session for `user`; answers the cookie to set.
pub async fn login(state: &AppState, user: &User) -> Result<HeaderValue, UiError> {
    let token = random_token();
    let now = Utc::now();
    let session = Session {
        id: session_id(&token),
        user_id: user.id,
        csrf_token: random_token(),
        created_at: now,
        expires_at: now + Duration::hours(SESSION_HOURS),
    };
    state.store.create_session(&session).await?;
    Ok(cookie(state, SESSION_COOKIE, &token, SESSION_HOURS * 3600))
}

/// The signed-in user. Pages that need one redirect to the login page without it.
#[derive(Debug, Clone)]
pub struct UiUser {
    pub user: User,
    pub session_id: String,
    pub csrf: String,
}

impl UiUser {
    /// The same caller the API's token auth yields: UI and API share every rule.
    pub fn caller(&self) -> Caller {
        Caller {
            actor: self.user.email.clone(),
            scope: if self.user.is_admin {
                Scope::Admin
            } else {
                Scope::Teams(self.user.team_ids.clone())
            },
        }
    }
}

pub async fn current_user(parts: &Parts, state: &AppState) -> Result<Option<UiUser>, UiError> {
    let Some(token) = cookie_value(&parts.headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let id = session_id(token);
    Ok(state
        .store
        .session(&id, Utc::now())
        .await?
        .map(|(session, user)| UiUser {
            user,
            session_id: session.id,
            csrf: session.csrf_token,
        }))
}

impl FromRequestParts<AppState> for UiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match current_user(parts, state).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(to_login(parts)),
            Err(e) => Err(e.into_response()),
        }
    }
}

fn to_login(parts: &Parts) -> Response {
    let next = match parts.method {
        Method::GET => parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
        _ => "/",
    };
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    Redirect::to(&format!("/login?next={next}")).into_response()
}

/// A urlencoded form body. Repeated names (checkboxes) keep every value.
#[derive(Debug, Default, Clone)]
pub struct FormData(pub Vec<(String, String)>);

impl FormData {
    pub fn parse(body: &[u8]) -> Self {
        FormData(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The trimmed value, `""` when absent.
    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_owned()
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn ids(&self, name: &str) -> Vec<Uuid> {
        self.all(name)
            .into_iter()
            .filter_map(|v| v.parse().ok())
            .collect()
    }
}

/// A form POST of a signed-in user whose CSRF token matched.
pub struct Posted {
    pub user: UiUser,
    pub form: FormData,
}

/// A form POST before login, checked against the pre-login cookie.
pub struct PostedAnonymously {
    pub form: FormData,
}

fn forbidden(why: &str) -> Response {
    error_page(axum::http::StatusCode::FORBIDDEN, "Forbidden", why, None)
}

/// A browser always sends `Origin` on a cross-site POST; when present it must be us.
fn check_origin(parts: &Parts, state: &AppState) -> Result<(), &'static str> {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let ours = [
        url::Url::parse(state.public_url())
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default(),
        format!("http://{host}"),
        format!("https://{host}"),
    ];
    if ours.iter().any(|o| o == origin) {
        Ok(())
    } else {
        Err("This form was sent from another site. Reload the page and try again.")
    }
}

fn tokens_match(sent: Option<&str>, expected: &str) -> bool {
    sent.is_some_and(|sent| {
        !expected.is_empty() && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
    })
}

async fn body(req: Request, state: &AppState) -> Result<(Parts, FormData), Response> {
    let (parts, body) = req.into_parts();
    check_origin(&parts, state).map_err(forbidden)?;
    let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
        .await
        .map_err(IntoResponse::into_response)?;
    Ok((parts, FormData::parse(&bytes)))
}

const STALE_FORM: &str =
    "The form's security token is missing or out of date. Go back, reload the page and send it again.";

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, form) = body(req, state).await?;
        let user = UiUser::from_request_parts(&mut parts, state).await?;
        if !tokens_match(form.get(CSRF_FIELD), &user.csrf) {
            return Err(forbidden(STALE_FORM));
        }
        Ok(Posted { user, form })
    }
}

impl FromRequest<AppState> for PostedAnonymously {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, form) = body(req, state).await?;
        let expected = cookie_value(&parts.headers, PRE_LOGIN_COOKIE).unwrap_or_default();
        if !tokens_match(form.get(CSRF_FIELD), expected) {
            return Err(forbidden(STALE_FORM));
        }
        Ok(PostedAnonymously { form })
    }
}
