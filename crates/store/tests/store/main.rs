//! The store on both backends, one binary with a module per area (`common` runs each test
//! on SQLite and on PostgreSQL). What needs a tmpfs of its own is `tests/sqlite_file.rs`.

#[macro_use]
mod common;

mod audit;
mod backends_agree;
mod call_log_and_recreate;
mod concurrency;
mod credentials;
mod email_sources;
mod group_commit;
mod inbound_state;
mod incidents_list;
mod journal;
mod leases;
mod links;
mod login_failures;
mod routing;
mod servicenow_sources;
mod source_payloads;
mod state_counts;
