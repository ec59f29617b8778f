//! What every page shares: the frame (navigation, signed-in user, logout form), the
//! error page, the static CSS and JS, and rendering askama templates into responses.

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::session::UiUser;
use crate::error::ApiError;
use snowbound_services::ServiceError;
use snowbound_store::StoreError;

pub const CSS: &str = include_str!("../../assets/snowbound.css");
pub const JS: &str = include_str!("../../assets/snowbound.js");

/// The frame around every page.
pub struct Page {
    pub title: String,
    /// Which navigation entry is current: "incidents", "integrations", "teams".
    pub nav: &'static str,
    pub user: Option<String>,
    pub is_admin: bool,
    pub csrf: String,
    /// One line of feedback after a redirect (`?done=…`).
    pub notice: Option<String>,
}

impl Page {
    pub fn new(title: impl Into<String>, nav: &'static str, user: &UiUser) -> Self {
        Page {
            title: title.into(),
            nav,
            user: Some(user.user.email.clone()),
            is_admin: user.user.is_admin,
            csrf: user.csrf.clone(),
            notice: None,
        }
    }

    pub fn anonymous(title: impl Into<String>, csrf: String) -> Self {
        Page {
            title: title.into(),
            nav: "",
            user: None,
            is_admin: false,
            csrf,
            notice: None,
        }
    }

    pub fn with_notice(mut self, done: Option<&str>) -> Self {
        self.notice = done.and_then(notice_text).map(str::to_owned);
        self
    }
}

/// Post/redirect/get messages travel as a fixed key, so a crafted URL cannot put words
/// on our pages.
fn notice_text(key: &str) -> Option<&'static str> {
    Some(match key {
        "created" => "Created.",
        "saved" => "Saved.",
        "forwarded" => "Forwarded. The ServiceNow record appears below once it is synced.",
        "acknowledged" => "Acknowledged.",
        "resolved" => "Resolved.",
        "reopened" => "Reopened.",
        "severity" => "Severity changed.",
        "commented" => "Comment added. Linked ServiceNow records get it as a work note.",
        "retry" => "The link will be tried again now.",
        "recreate" => "The ServiceNow record will be created again now.",
        "deleted" => "Deleted.",
        "rotated" => "Secret rotated. The old ingest URL no longer works; copy the new one below.",
        "moved" => "Moved. The rules are evaluated in the order shown.",
        "password" => "Password reset. That user's other sessions have ended.",
        "access" => "Role and teams saved. They apply from that user's next page.",
        "unlocked" => "Login wait ended. That user may log in again now.",
        _ => return None,
    })
}

pub fn render<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<h1>Internal error</h1><p>See the server log.</p>".to_owned()),
            )
                .into_response()
        }
    }
}

pub fn ok<T: Template>(template: &T) -> Response {
    render(StatusCode::OK, template)
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    page: Page,
    heading: String,
    message: String,
}

pub fn error_page(
    status: StatusCode,
    heading: &str,
    message: &str,
    user: Option<&UiUser>,
) -> Response {
    let page = match user {
        Some(user) => Page::new(heading, "", user),
        None => Page::anonymous(heading, String::new()),
    };
    render(
        status,
        &ErrorPage {
            page,
            heading: heading.to_owned(),
            message: message.to_owned(),
        },
    )
}

/// A failure of a UI handler: the API's error, shown as a page.
#[derive(Debug)]
pub struct UiError(pub ApiError);

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        UiError(e)
    }
}

impl From<ServiceError> for UiError {
    fn from(e: ServiceError) -> Self {
        UiError(e.into())
    }
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        UiError(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let heading = match self.0.status {
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::CONFLICT => "That did not work",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        error_page(self.0.status, heading, &self.0.message, None)
    }
}

pub type UiResult<T = Response> = Result<T, UiError>;

pub async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// Readable UTC time for tables: `2026-11-28 14:03:07`.
pub fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}
