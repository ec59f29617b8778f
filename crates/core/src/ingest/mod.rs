//! Alert bodies from sources, parsed into [`Alert`]s. Pure, and they must never panic:
//! they read whatever the network sends (the fuzz targets call them directly).
//!
//! Senders cannot be asked to fix a body the way a person using the API can
//! (Alertmanager does not resend on a 4xx), so ingest keeps what it can: NUL, which
//! PostgreSQL cannot store, becomes U+FFFD in every string of an alert; Alertmanager's
//! over-long values are cut (the webhook, written by people, refuses them by name).

pub mod alertmanager;
pub mod email;
pub mod grafana;
pub mod json_mapping;
pub mod webhook;

use crate::json::BodyError;
use crate::model::{Attributes, Severity};
use crate::validate::{check_text, limits, replace_nul};

/// Longest dedup key we keep; longer ones are refused, not cut (cutting could merge
/// two different alerts into one incident).
pub const DEDUP_KEY_MAX_CHARS: usize = limits::DEDUP_KEY;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub dedup_key: String,
    pub event: AlertEvent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertEvent {
    /// Opens an incident for the key, or updates the one the key holds.
    Firing(AlertFields),
    /// Resolves the incident the key holds, if any.
    Resolved,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFields {
    pub title: String,
    pub description: Option<String>,
    pub severity: Severity,
    /// `None` keeps the incident's attributes on an update.
    pub attributes: Option<Attributes>,
}

/// `dedup_key` checks shared by every kind of source.
pub(crate) fn checked_key(key: &str, field: &str) -> Result<String, BodyError> {
    let key = replace_nul(key.trim().to_owned());
    if key.is_empty() {
        return Err(BodyError::field(field, "is required"));
    }
    check_text(&key, DEDUP_KEY_MAX_CHARS).map_err(|m| BodyError::field(field, m))?;
    Ok(key)
}
