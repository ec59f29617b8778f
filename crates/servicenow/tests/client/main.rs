//! The ServiceNow client against the emulator (and raw servers for answers the emulator
//! never gives). One binary with a module per area: a new test file is a `mod` here.

mod common;

mod auth;
mod choices_and_test_connection;
mod failures;
mod inbound_reads;
mod journal;
mod local_instances;
mod raw_server;
mod secrets;
mod writes;
