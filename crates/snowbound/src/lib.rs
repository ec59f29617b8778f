//! The Snowbound binary's wiring, as a library so integration tests boot exactly what
//! `snowbound serve` runs.

pub mod app;
pub mod config;
pub mod demo;
mod key_file;

pub use app::{App, AppError};
pub use config::{LogFormat, ServeConfig};
