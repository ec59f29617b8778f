//! The web UI: server-rendered HTML (askama) over the same application services as the
//! API (`snowbound-services`): pages turn forms into the services' commands and their
//! errors into the fields to mark. Every form works without JavaScript; the one small script only refreshes choice
//! lists and runs Test Connection in place.

mod audit;
mod auth;
mod auth_fields;
mod field_mappings;
mod incidents;
mod integrations;
mod json_source;
mod layout;
mod mapping_preview;
mod rules;
mod session;
mod settings;
mod settings_view;
mod source_page;
mod sources;
mod teams;
mod typed;
mod users;
mod who_wins;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(auth::home))
        .route("/assets/snowbound.css", get(layout::css))
        .route("/assets/snowbound.js", get(layout::js))
        .route("/login", get(auth::login_page).post(auth::login_submit))
        .route("/setup", get(auth::setup_page).post(auth::setup_submit))
        .route("/logout", post(auth::logout))
        .merge(incidents::router())
        .merge(integrations::router())
        .merge(settings::router())
        .merge(field_mappings::router())
        .merge(teams::router())
        .merge(sources::router())
        .merge(rules::router())
        .merge(users::router())
        .merge(audit::router())
        .merge(who_wins::router())
}
