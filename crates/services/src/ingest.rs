//! Alerts from sources become incident changes: [`IncidentService::ingest`] applies one
//! parsed alert ([`snowbound_core::ingest`]) through the same service as every other
//! change, and answers only once the change is committed, so an accepted alert is never
//! lost.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use serde::Serialize;
use snowbound_core::ingest::{Alert, AlertEvent};
use snowbound_core::source::Source;
use snowbound_core::{Incident, IncidentStatus};
use uuid::Uuid;

use crate::caller::{Caller, Scope};
use crate::error::{ServiceError, ServiceResult};
use crate::incidents::{Attempt, Change, IncidentService, NewIncident, Opening};
use crate::routing_links::RoutingContext;

/// Races between alerts with one key, or with people editing the incident, are retried
/// this often before the sender is told to retry (it will: 5xx/409 are retried by both
/// Alertmanager and sensible webhooks).
const MAX_ATTEMPTS: usize = 8;

/// What one alert did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Outcome {
    pub dedup_key: String,
    /// opened | updated | unchanged | resolved | ignored (resolved, but no incident held the
    /// key) | discarded (a routing rule discarded it: no incident)
    pub action: &'static str,
    pub incident_id: Option<Uuid>,
}

/// What every alert of one body shares, read once per body rather than once per alert:
/// the source, its caller, and its team's integrations and routing rules (a rule saved
/// while a body is applied acts from the next body on), from the node's cache.
pub struct Intake {
    source: Source,
    caller: Caller,
    routing: Arc<RoutingContext>,
}

impl IncidentService {
    pub async fn intake(&self, source: Source) -> ServiceResult<Intake> {
        let routing = self.lookups.routing(&*self.store, source.team_id).await?;
        Ok(Intake {
            caller: Caller {
                actor: source.actor(),
                scope: Scope::Teams(vec![source.team_id]),
            },
            source,
            routing,
        })
    }

    pub async fn ingest(&self, intake: &Intake, alert: Alert) -> ServiceResult<Outcome> {
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
        let held_keys = &self.lookups.held_keys;
        let firing = matches!(alert.event, AlertEvent::Firing(_));
        // The holder a refused open answered: as committed, so no need to read it again.
        let mut holder: Option<Incident> = None;
        for attempt in 0..MAX_ATTEMPTS {
            let held = match holder.take() {
                Some(incident) => Some(incident),
                None if attempt == 0
                    && firing
                    && !held_keys.is_held(source.id, &alert.dedup_key) =>
                {
                    None
                }
                None => {
                    let held = self
                        .store
                        .open_incident_for_key(source.id, &alert.dedup_key)
                        .await?;
                    if held.is_none() {
                        held_keys.released(source.id, &alert.dedup_key);
                    }
                    held
                }
            };
            if held.is_some() {
                held_keys.held(source.id, &alert.dedup_key);
            }
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
                        Opening::Opened(incident) => {
                            held_keys.held(source.id, &alert.dedup_key);
                            return Ok(outcome("opened", Some(incident.id)));
                        }
                        Opening::Discarded => return Ok(outcome("discarded", None)),
                        // Another alert with this key opened it first (or before this
                        // node knew): update that one.
                        Opening::KeyHeld(incident) => {
                            holder = Some(*incident);
                            continue;
                        }
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
                    if incident.status == IncidentStatus::Resolved {
                        held_keys.released(source.id, &alert.dedup_key);
                    }
                    return Ok(outcome(changed_action, Some(incident.id)));
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
        Err(ServiceError::keeps_changing(
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
