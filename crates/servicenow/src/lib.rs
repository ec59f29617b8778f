//! ServiceNow Table API client for Snowbound.
//!
//! This crate is the only place that knows how to talk to ServiceNow and how to read its
//! answers. Every call returns an [`Exchange`]: the classified outcome plus every HTTP call
//! made (for the integration's API call log). Callers decide *what to do* about a
//! [`Failure`] (back off, pause, park); they never inspect status codes themselves.

mod api_call;
mod auth;
mod choices;
mod classify;
mod client;
mod connection;
mod journal;
mod oauth;
mod read;
mod record;
mod test_connection;

pub use api_call::{ApiCall, MAX_LOGGED_BODY_BYTES};
pub use auth::{Auth, ConnectionError};
pub use choices::Choice;
pub use classify::{speaks_table_api, AuthRefusal, Failure};
pub use client::{BuildError, Client, ClientConfig, Exchange};
pub use connection::{validate_instance_url, Connection};
pub use read::{and_each_block, sys_id_scopes, Changes, ChangesQuery, ReadRecord};
pub use record::Record;
pub use snowbound_core::instance_url::InstancePolicy;
pub use test_connection::{Check, TestReport};

/// Field name → string value, as ServiceNow stores them (`"3"`, `"true"`, `""`).
/// Deliberately the same type as `snowbound_core::FieldMap` so values pass through unchanged.
pub type FieldMap = std::collections::BTreeMap<String, String>;
