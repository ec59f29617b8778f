//! Alerts from sources become incident changes. Parsers are pure (and must never
//! panic: they read whatever the network sends); [`IncidentService::ingest`] applies
//! one parsed alert through the same service as every other change, and answers only
//! once the change is committed, so an accepted alert is never lost.
//!
//! Senders cannot be asked to fix a body the way a person using the API can
//! (Alertmanager does not resend on a 4xx), so ingest keeps what it can: NUL, which
//! PostgreSQL cannot store, becomes U+FFFD in every string of an alert; Alertmanager's
//! over-long values are cut (the webhook, written by people, refuses them by name).

pub mod alertmanager;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use serde::Serialize;
use snowbound_core::source::Source;
use snowbound_core::validate::{check_text, limits, replace_nul};
use snowbound_core::{Attributes, Severity};
use uuid::Uuid;

use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiResult};
use crate::incidents::{Attempt, Change, IncidentService, NewIncident};
use crate::routing::RoutingContext;

/// Longest dedup key we keep; longer ones are refused, not cut (cutting could merge
/// two different alerts into one incident).
pub const DEDUP_KEY_MAX_CHARS: usize = limits::DEDUP_KEY;

/// Races between alerts with one key, or with people editing the incident, are retried
/// this often before the sender is told to retry (it will: 5xx/409 are retried by both
/// Alertmanager and sensible webhooks).
const MAX_ATTEMPTS: usize = 8;

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

/// What one alert did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Outcome {
    pub dedup_key: String,
    /// opened | updated | unchanged | resolved | ignored (resolved, but no incident held the key)
    pub action: &'static str,
    pub incident_id: Option<Uuid>,
}

/// What every alert of one body shares, read once per body rather than once per alert:
/// the source, its caller, and its team's integrations and routing rules (a rule saved
/// while a body is applied acts from the next body on).
pub(crate) struct Intake {
    source: Source,
    caller: Caller,
    routing: RoutingContext,
}

impl IncidentService {
    pub(crate) async fn intake(&self, source: Source) -> ApiResult<Intake> {
        let routing = RoutingContext::load(&*self.store, source.team_id).await?;
        Ok(Intake {
            caller: Caller {
                actor: source.actor(),
                scope: Scope::Teams(vec![source.team_id]),
            },
            source,
            routing,
        })
    }

    pub(crate) async fn ingest(&self, intake: &Intake, alert: Alert) -> ApiResult<Outcome> {
        let Intake {
            source,
            caller,
            routing,
        } = intake;
        let outcome = |action, incident_id| Outcome {
            dedup_key: alert.dedup_key.clone(),
            action,
            incident_id,
        };
        // Alerts with one key take turns on this node instead of racing: racers would
        // all read one version and all but one go stale, again and again.
        let turn = key_lock(source.id, &alert.dedup_key);
        let _turn = turn.lock().await;
        for attempt in 0..MAX_ATTEMPTS {
            let held = self
                .store
                .open_incident_for_key(source.id, &alert.dedup_key)
                .await?;
            let (old, change) = match (held, &alert.event) {
                (None, AlertEvent::Resolved) => return Ok(outcome("ignored", None)),
                (None, AlertEvent::Firing(fields)) => {
                    let new = NewIncident {
                        team_id: source.team_id,
                        title: fields.title.clone(),
                        description: fields.description.clone().unwrap_or_default(),
                        severity: fields.severity,
                        attributes: fields.attributes.clone().unwrap_or_default(),
                    };
                    let key = Some((source.id, alert.dedup_key.as_str()));
                    match self.open_in(caller, new, key, routing).await? {
                        Some(incident) => return Ok(outcome("opened", Some(incident.id))),
                        // Another alert with this key opened it first: update that one.
                        None => continue,
                    }
                }
                (Some(old), AlertEvent::Firing(fields)) => (
                    old,
                    Change::Alert {
                        title: fields.title.clone(),
                        description: fields.description.clone(),
                        severity: fields.severity,
                        attributes: fields.attributes.clone(),
                    },
                ),
                // No comment: the integration's configured close notes apply.
                (Some(old), AlertEvent::Resolved) => (old, Change::Resolve { comment: None }),
            };
            let changed_action = match change {
                Change::Resolve { .. } => "resolved",
                _ => "updated",
            };
            match self
                .attempt_in(old, &change, &caller.actor, routing)
                .await?
            {
                Attempt::Unchanged(incident) => return Ok(outcome("unchanged", Some(incident.id))),
                Attempt::Changed(incident) => {
                    return Ok(outcome(changed_action, Some(incident.id)))
                }
                Attempt::Stale => {
                    // Writes queue for SQLite's one writer in order, so alerts racing
                    // for one key would re-read and collide again in lockstep (the
                    // last of n needing n attempts); a short random pause spreads them.
                    let ceiling_us = 500 * (attempt as u64 + 1);
                    let pause = rand::Rng::gen_range(&mut rand::thread_rng(), 0..=ceiling_us);
                    tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
                    continue;
                }
            }
        }
        Err(ApiError::conflict(
            "conflict",
            "the incident for this alert keeps changing concurrently; send the alert again",
        ))
    }
}

type KeyLocks = HashMap<(Uuid, String), Weak<tokio::sync::Mutex<()>>>;

/// The lock of one (source, key); entries die with their last user.
fn key_lock(source_id: Uuid, key: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: LazyLock<Mutex<KeyLocks>> = LazyLock::new(Default::default);
    let mut locks = LOCKS.lock().unwrap_or_else(|e| e.into_inner());
    let id = (source_id, key.to_owned());
    if let Some(lock) = locks.get(&id).and_then(Weak::upgrade) {
        return lock;
    }
    if locks.len() >= 1024 {
        locks.retain(|_, lock| lock.strong_count() > 0);
    }
    let lock = Arc::new(tokio::sync::Mutex::new(()));
    locks.insert(id, Arc::downgrade(&lock));
    lock
}

/// `dedup_key` checks shared by every kind of source.
pub(crate) fn checked_key(key: &str, field: &str) -> ApiResult<String> {
    let key = replace_nul(key.trim().to_owned());
    if key.is_empty() {
        return Err(ApiError::invalid_field(field, "is required"));
    }
    check_text(&key, DEDUP_KEY_MAX_CHARS).map_err(|m| ApiError::invalid_field(field, m))?;
    Ok(key)
}
