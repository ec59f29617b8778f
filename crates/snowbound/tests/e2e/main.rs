//! The end-to-end suite: the real Snowbound (in-process, or the `snowbound` binary as a
//! child process) against the ServiceNow emulator, over HTTP. One binary, so the harness
//! (`snowbound-testkit`) and the suite are compiled and linked once. Tests that need a
//! process of their own (a tmpfs disk, a thousand sockets) are `tests/full_disk.rs` and
//! `tests/slow_clients.rs`.

mod alertmanager;
mod audit;
mod auth_types;
mod browser;
mod crash;
mod email;
mod grafana_json_sources;
mod hostile_input;
mod inbound;
mod incidents_search;
mod ingest_input;
mod ingest_limits;
mod journal;
mod login_input;
mod login_limits;
mod logs;
mod lookup_caches;
mod mapping;
mod metrics;
mod multi_node;
mod openapi;
mod process;
mod readiness;
mod routing_rules;
mod secrets;
mod sources_routing;
mod start_up;
mod sync_concurrency;
mod sync_failures;
mod sync_lifecycle;
mod ui_admin;
mod ui_auth;
mod ui_http;
mod ui_inbound;
mod ui_mapping;
mod ui_routing;
mod ui_sources;
mod untrusted_answers;

/// The `snowbound` binary, for the tests that run it as a child process.
pub const SNOWBOUND: &str = env!("CARGO_BIN_EXE_snowbound");
