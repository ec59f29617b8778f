//! The one error of the services. Each variant says what went wrong in domain terms;
//! the HTTP layer decides the status code and JSON of each in one place.

use snowbound_core::lifecycle::{LifecycleError, TransitionError};
use snowbound_core::validate::FieldError;
use snowbound_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The object does not exist, or the caller may not see it (which is the same to them).
    #[error("no such {what}")]
    NotFound { what: &'static str },
    /// One value of the command is wrong.
    #[error("{0}")]
    Invalid(FieldError),
    /// Several values were checked together; every problem is listed, the first leads.
    #[error("{}", .0.first().map(ToString::to_string).unwrap_or_default())]
    InvalidFields(Vec<FieldError>),
    /// The change collides with the object's state or another object.
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    },
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("{0}")]
    Forbidden(&'static str),
    /// The caller sent too much too fast; it may try again after `retry_after`.
    #[error("{message}")]
    RateLimited {
        retry_after: std::time::Duration,
        message: String,
    },
    #[error(transparent)]
    Store(StoreError),
    /// A rule of ours broke; the message is for the log, not the user.
    #[error("{0}")]
    Internal(&'static str),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn not_found(what: &'static str) -> Self {
        ServiceError::NotFound { what }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Invalid(FieldError::new(field, message))
    }

    /// Concurrent writers kept winning: the caller should try again.
    pub fn keeps_changing(message: &str) -> Self {
        ServiceError::Conflict {
            code: "conflict",
            message: message.to_owned(),
            field: None,
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        ServiceError::Store(e)
    }
}

impl From<FieldError> for ServiceError {
    fn from(e: FieldError) -> Self {
        ServiceError::Invalid(e)
    }
}

impl From<LifecycleError> for ServiceError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Transition(t) => ServiceError::Transition(t),
            LifecycleError::Invalid(f) => ServiceError::Invalid(f),
        }
    }
}
