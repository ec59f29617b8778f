//! Snowbound's sync workers: they lease links that are due, make the ServiceNow record
//! look like the incident now, and record what happened. Only this crate calls
//! ServiceNow to sync; the HTTP layer just commits changes and wakes it.

mod adaptive;
mod api_log;
mod backoff;
mod completions;
mod config;
mod inbound;
mod integrations;
mod job;
mod leases;
mod observe;
mod outcome;
mod rate_limit;
mod reconcile;
mod runner;

pub use api_log::api_call_records;
pub use backoff::Backoff;
pub use config::{
    check_lease, defaults, heartbeat_interval, shortest_lease, EngineConfig, LeaseTooShort,
    CLOCK_SKEW_MARGIN,
};
pub use inbound::{InboundTick, InboundWorker};
pub use integrations::Concurrency;
pub use observe::EngineObserver;
pub use reconcile::{desired_fields, mapped_desired, subject_of, MappingContext};
pub use runner::{CallObserver, Engine, Tick, WeakEngine, Worker};
/// Lives with the services, which wake the engine after every change they commit.
pub use snowbound_services::EngineWaker;
