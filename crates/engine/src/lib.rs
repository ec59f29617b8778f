//! Snowbound's sync workers: they lease links that are due, make the ServiceNow record
//! look like the incident now, and record what happened.

mod waker;

pub use waker::EngineWaker;
