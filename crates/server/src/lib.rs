//! Snowbound's HTTP surface: `/api/v1` (teams, tokens, integrations, incidents) and
//! `/healthz`. The binary resolves the admin token and builds an [`AppState`];
//! [`router`] turns it into an axum `Router`, and [`listener::serve`] serves it within
//! bounds that slow clients cannot exhaust.
//!
//! Every error is JSON: `{"error":{"code","message","field"?,"fields"?}}`.

pub mod accounts;
pub mod auth;
mod choices;
pub mod error;
pub mod extract;
pub mod incidents;
/// Public for the fuzz targets: the parsers read whatever the network sends.
pub mod ingest;
mod integration_input;
pub mod listener;
mod routes;
mod routing;
mod servicenow;
mod state;
mod ui;
mod views;

pub use auth::{Caller, Scope};
pub use error::{ApiError, ApiResult};
pub use incidents::{Change, IncidentService, NewIncident};
pub use routes::{router, MAX_BODY_BYTES};
pub use state::{hash_token, AppState};
