//! Snowbound's HTTP surface: `/api/v1`, `/ingest`, the web UI and `/healthz`. Handlers
//! and pages translate HTTP and forms into the commands of `snowbound-services` and
//! their answers back; [`error`] maps every service error to its status and JSON.
//! The binary resolves the admin token and builds an [`AppState`]; [`router`] turns it
//! into an axum `Router`, and [`listener::serve`] serves it within bounds that slow
//! clients cannot exhaust.
//!
//! Every error is JSON: `{"error":{"code","message","field"?,"fields"?}}`.

pub mod accounts;
pub mod auth;
mod choices;
pub mod client_address;
pub mod error;
pub mod extract;
pub mod listener;
pub mod metrics;
pub mod openapi;
mod preview;
pub mod readiness;
mod routes;
mod servicenow;
pub mod smtp;
mod state;
mod ui;
mod views;

pub use auth::{Caller, Scope};
pub use error::{ApiError, ApiResult};
pub use routes::{router, MAX_BODY_BYTES};
pub use snowbound_services::{Change, IncidentService, NewIncident};
pub use state::{hash_token, AppState};
