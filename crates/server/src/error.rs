//! The one error shape of the API: `{"error":{"code","message","field"?,"fields"?}}`.
//! Every failure path, including extractor rejections and panics, ends here so clients
//! never have to parse plain text.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use snowbound_core::json::{BodyError, BodyErrorKind};
use snowbound_core::validate::FieldError;
use snowbound_services::ServiceError;
use snowbound_store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Every bad field when validation found several; `field` is the first.
    pub fields: Vec<FieldError>,
    /// Sent as `Retry-After` (whole seconds, rounded up) on a 429 or 503.
    pub retry_after: Option<std::time::Duration>,
}

/// Every error answer of the API.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail<'a> {
    /// Stable, machine-readable: `invalid_field`, `not_found`, `unauthorized`, …
    code: &'a str,
    /// For people; says what to fix.
    message: &'a str,
    /// The dotted path of the body key or the query parameter at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    /// Every bad field when validation found several; `field` is the first.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    fields: &'a [FieldError],
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            fields: Vec::new(),
            retry_after: None,
        }
    }

    /// Too much too fast; `Retry-After` says when to come back (Alertmanager, Grafana
    /// and browsers wait for it).
    pub fn rate_limited(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        let mut err = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
        err.retry_after = Some(retry_after);
        err
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// A value the client sent is wrong; `field` is its dotted path in the body.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("{field}: {message}"),
        )
        .with_field(field)
    }

    /// Several validation problems: the first one leads, all are listed.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let first = errors
            .first()
            .cloned()
            .unwrap_or_else(|| FieldError::new("", "invalid"));
        let mut err = ApiError::invalid_field(first.field, first.message);
        err.fields = errors;
        err
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn internal() -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// The generic error for a status that reached the client without a JSON body of ours
    /// (a middleware's plain-text answer): keeps the error shape uniform.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body exceeds 1 MiB"),
            StatusCode::NOT_FOUND => ("not_found", "no such route"),
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                "this route does not accept that method",
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ),
            StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
            s if s.is_server_error() => ("internal", "internal error; see the server log"),
            _ => ("bad_request", "the request was not understood"),
        };
        ApiError::new(status, code, message)
    }
}

impl ApiError {
    /// The inner object of the error body, for answers that carry several errors.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.inner()).unwrap_or_default()
    }

    fn inner(&self) -> ErrorDetail<'_> {
        ErrorDetail {
            code: self.code,
            message: &self.message,
            field: self.field.as_deref(),
            fields: &self.fields,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.inner(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (self.status, bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(wait) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after_value(wait));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Whole seconds, rounded up, and never 0: "retry after 0" invites a busy loop.
pub fn retry_after_value(wait: std::time::Duration) -> HeaderValue {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(seconds.max(1))
}

/// Store failures that reach a handler unhandled are server faults, except the few that
/// describe the request: the caller maps `NotFound` to the object it asked for.
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::not_found("object"),
            StoreError::Conflict { field } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{field} is already taken"),
            )
            .with_field(field),
            StoreError::Stale => {
                ApiError::conflict("conflict", "the object changed concurrently; try again")
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal()
            }
        }
    }
}

/// The services' errors as the API has always answered them: the one place that decides
/// their status codes and JSON.
impl From<ServiceError> for ApiError {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::NotFound { what } => ApiError::not_found(what),
            ServiceError::Invalid(e) => ApiError::invalid_field(e.field, e.message),
            ServiceError::InvalidFields(errors) => ApiError::invalid_fields(errors),
            ServiceError::Conflict {
                code,
                message,
                field,
            } => {
                let err = ApiError::conflict(code, message);
                match field {
                    Some(field) => err.with_field(field),
                    None => err,
                }
            }
            ServiceError::Transition(e) => ApiError::conflict("invalid_transition", e.to_string()),
            ServiceError::Forbidden(message) => ApiError::forbidden(message),
            ServiceError::RateLimited {
                retry_after,
                message,
            } => ApiError::rate_limited(message, retry_after),
            ServiceError::Store(e) => e.into(),
            ServiceError::Internal(why) => {
                tracing::error!(error = why, "internal error");
                ApiError::internal()
            }
        }
    }
}

/// A body that is not JSON is the client's 400; JSON of the wrong shape or with a bad
/// value is 422, naming the field when there is one.
impl From<BodyError> for ApiError {
    fn from(err: BodyError) -> Self {
        match (err.kind, err.field) {
            (BodyErrorKind::Malformed, field) => {
                let api = ApiError::bad_request("invalid_json", err.message);
                match field {
                    Some(field) => api.with_field(field),
                    None => api,
                }
            }
            (BodyErrorKind::InvalidField, Some(field)) => {
                ApiError::invalid_field(field, err.message)
            }
            (BodyErrorKind::InvalidBody | BodyErrorKind::InvalidField, _) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                err.message,
            ),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
