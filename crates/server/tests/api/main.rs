//! HTTP tests of the API, driven with reqwest against the real router and a SQLite store.

mod common;
mod errors;
mod incidents;
mod instance_settings;
mod integrations;
mod servicenow;
