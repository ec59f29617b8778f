//! Conformance of the emulator to ServiceNow's documented behaviour, over HTTP. One
//! binary with a module per area, so the helpers and the emulator are linked once.

mod common;

mod auth;
mod control;
mod inbound;
mod incident;
mod oauth;
mod references_journal;
mod table_api;
