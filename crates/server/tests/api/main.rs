//! HTTP tests of the API, driven with reqwest against the real router and a SQLite store.

mod common;
mod errors;
mod incidents;
mod integrations;
mod servicenow;
