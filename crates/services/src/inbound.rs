//! The inbound service: what a ServiceNow record Snowbound read means, written. The
//! engine reads records (pokes, polls) and hands each one here; the decision is
//! `core::inbound::decide` (or `born_incident` for a record no incident holds), and its
//! write is one store transaction, so outbound never sees the change without `pushed`
//! knowing that it came from ServiceNow (`docs/SYNC_RULES.md`).

use std::sync::Arc;

use chrono::{DateTime, DurationRound, Utc};
use snowbound_core::inbound::born::{born_incident, Born};
use snowbound_core::inbound::{
    already_applied, decide, pushed_after_inbound, Decision, IncidentAction, IncidentSide,
    LinkSide, Quiet, Rules, SeenRecord, ServiceNowSourceSettings,
};
use snowbound_core::lifecycle::{apply, entry, Change, LifecycleError};
use snowbound_core::source::Source;
use snowbound_core::sync::{incident_url, servicenow_fields};
use snowbound_core::{new_id, Incident, IncidentStatus, Integration, TimelineEntry};
use snowbound_store::{
    AdoptRecord, InboundIncidentChange, InboundWrite, LinkState, Store, StoreError,
};
use uuid::Uuid;

use crate::error::{ServiceError, ServiceResult};
use crate::waker::EngineWaker;

/// Optimistic concurrency, as for every incident change.
const MAX_ATTEMPTS: usize = 5;

/// The link's reason when its record is gone.
pub const DELETED_IN_SERVICENOW: &str = "deleted in ServiceNow";

/// One record as read, with where it was read from.
#[derive(Debug, Clone, Copy)]
pub struct Heard<'a> {
    pub team_id: Uuid,
    pub settings: &'a ServiceNowSourceSettings,
    pub integration: &'a Integration,
    pub record: &'a SeenRecord,
    /// ServiceNow said the record matches the source's `open_filter` (the read carried
    /// it); never evaluated locally.
    pub matches_filter: bool,
    /// Where the incident's link back points (`SNOWBOUND_PUBLIC_URL`).
    pub public_url: &'a str,
}

/// What hearing a record came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to do: a repeat, an echo, or Snowbound's own write.
    Quiet(Quiet),
    /// Applied to the linked incident: its actions, re-assertions and notes.
    Applied {
        incident_id: Uuid,
        actions: Vec<IncidentAction>,
        reasserted: bool,
    },
    /// A ServiceNow-born incident opened on the record.
    Born { incident_id: Uuid },
    /// No incident holds the record and none is opened for it (outside the filter,
    /// created by a Snowbound, ended).
    NotBorn(Born),
    /// The record is gone from ServiceNow: its link is parked.
    Gone { incident_id: Uuid },
    /// A gone record no link holds, or whose link is parked already.
    Unknown,
}

#[derive(Clone)]
pub struct InboundService {
    store: Arc<dyn Store>,
    waker: EngineWaker,
}

impl InboundService {
    pub fn new(store: Arc<dyn Store>, waker: EngineWaker) -> Self {
        InboundService { store, waker }
    }

    /// Queues a business rule's poke `{sys_id, table}` for `source` (durable before the
    /// caller answers) and wakes the inbound worker. Only which record changed is taken:
    /// anyone holding the URL could forge field values, so the record is read over the
    /// Table API.
    pub async fn poke(&self, source: &Source, sys_id: &str, table: &str) -> ServiceResult<()> {
        let Some(settings) = &source.servicenow else {
            return Err(ServiceError::Conflict {
                code: "source_misconfigured",
                message: "this servicenow source has no settings".into(),
                field: None,
            });
        };
        if !settings.delivery.accepts_pokes() {
            return Err(ServiceError::Conflict {
                code: "pokes_refused",
                message: "this source only polls (delivery \"poll\"); it takes no pokes".into(),
                field: None,
            });
        }
        let sys_id = sys_id.trim();
        if sys_id.len() != 32 || !sys_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ServiceError::invalid(
                "sys_id",
                "must be 32 hexadecimal characters",
            ));
        }
        let integration = self.store.get_integration(settings.integration_id).await?;
        let expected = &integration.integration.servicenow.table;
        if table != expected {
            return Err(ServiceError::invalid(
                "table",
                format!("this source reads table `{expected}`"),
            ));
        }
        self.store
            .enqueue_poke(source.id, &sys_id.to_ascii_lowercase(), table, Utc::now())
            .await?;
        self.waker.wake_inbound();
        Ok(())
    }

    /// Applies what `heard` means: to the incident linked to the record, or by opening a
    /// ServiceNow-born one.
    pub async fn hear(&self, heard: Heard<'_>) -> ServiceResult<Outcome> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(link) = self
                .store
                .inbound_link(heard.integration.id, &heard.record.sys_id)
                .await?
            else {
                match self.born(heard).await? {
                    Some(outcome) => return Ok(outcome),
                    // Another read adopted it meanwhile: judge it against that link.
                    None => continue,
                }
            };
            // A repeat (a poll's overlap, a poke and a poll seeing one update) is decided
            // before the incident and its timeline are read: polls meet it all the time.
            if already_applied(heard.record.mod_count, link.applied_mod_count) {
                return Ok(Outcome::Quiet(Quiet::AlreadyApplied));
            }
            let incident = self.store.get_incident(link.link.incident_id).await?;
            let timeline = self.store.timeline(incident.id).await?;
            let settings = &heard.integration.servicenow;
            let decision = decide(
                heard.record,
                LinkSide {
                    pushed: &link.link.pushed,
                    applied_mod_count: link.applied_mod_count,
                    notes: &link.notes,
                    reconcile_pending: link.link.state != LinkState::Synced
                        || link.link.rev != link.link.synced_rev,
                },
                incident_side(&incident, &timeline),
                Rules {
                    settings,
                    transitions: heard.settings.transitions,
                    own_user: settings.auth.username(),
                },
            );
            let inbound = match decision {
                Decision::Nothing(quiet) => return Ok(Outcome::Quiet(quiet)),
                Decision::Apply(inbound) => inbound,
            };
            let actor = inbound.actor();
            let now = now_ms();
            let (after, timeline) = apply_actions(&incident, &inbound.actions, &actor, now)?;
            let subject = after.as_ref().unwrap_or(&incident).snapshot();
            let desired_after = servicenow_fields(
                &subject,
                settings,
                &incident_url(heard.public_url, incident.id),
            );
            let mut pushed = pushed_after_inbound(&desired_after, &inbound.touched);
            pushed.extend(inbound.servicenow_holds.clone());
            let write = InboundWrite {
                incident_id: incident.id,
                integration_id: heard.integration.id,
                change: after.map(|incident_after| InboundIncidentChange {
                    incident: incident_after,
                    expected_updated_at: incident.updated_at,
                    timeline,
                }),
                mod_count: inbound.mod_count,
                pushed,
                notes: inbound.notes.clone(),
                reconcile: inbound.needs_reconcile(),
                park: None,
            };
            match self.store.apply_inbound(&write).await {
                Ok(()) => {}
                Err(StoreError::Stale) => continue,
                Err(e) => return Err(e.into()),
            }
            if write.change.is_some() || write.reconcile {
                self.waker.wake();
            }
            return Ok(Outcome::Applied {
                incident_id: incident.id,
                actions: inbound.actions,
                reasserted: write.reconcile,
            });
        }
        Err(ServiceError::keeps_changing(
            "the incident keeps changing concurrently; the record is read again",
        ))
    }

    /// `None`: another read adopted the record first.
    async fn born(&self, heard: Heard<'_>) -> ServiceResult<Option<Outcome>> {
        let settings = &heard.integration.servicenow;
        let born = match born_incident(heard.record, heard.matches_filter, false, settings) {
            Born::Open(born) => born,
            other => return Ok(Some(Outcome::NotBorn(other))),
        };
        let now = now_ms();
        let incident = Incident {
            id: new_id(),
            team_id: heard.team_id,
            title: born.title,
            description: born.description,
            severity: born.severity,
            status: IncidentStatus::Open,
            attributes: born.attributes,
            resolve_comment: None,
            source_id: None,
            created_at: now,
            updated_at: now,
        };
        let actor = format!("{} in ServiceNow {}", born.by, born.number);
        let timeline = vec![entry(
            now,
            &actor,
            "opened",
            format!(
                "opened in ServiceNow as {} with severity {}",
                born.number, incident.severity
            ),
        )];
        let pushed = servicenow_fields(
            &incident.snapshot(),
            settings,
            &incident_url(heard.public_url, incident.id),
        );
        let adopt = AdoptRecord {
            incident,
            timeline,
            integration_id: heard.integration.id,
            sys_id: born.sys_id,
            number: born.number,
            pushed,
            mod_count: born.mod_count,
        };
        match self.store.adopt_record(&adopt).await {
            Ok(()) => Ok(Some(Outcome::Born {
                incident_id: adopt.incident.id,
            })),
            Err(StoreError::Conflict { field: "sys_id" }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The record `sys_id` is gone from ServiceNow (a read answered 404): its link parks
    /// and says so; the incident stays as it is.
    pub async fn record_gone(&self, integration_id: Uuid, sys_id: &str) -> ServiceResult<Outcome> {
        let Some(link) = self.store.inbound_link(integration_id, sys_id).await? else {
            return Ok(Outcome::Unknown);
        };
        if link.link.state == LinkState::Parked
            && link.link.last_error.as_deref() == Some(DELETED_IN_SERVICENOW)
        {
            return Ok(Outcome::Unknown);
        }
        self.store
            .apply_inbound(&InboundWrite {
                incident_id: link.link.incident_id,
                integration_id,
                change: None,
                mod_count: link.applied_mod_count.unwrap_or(0),
                pushed: Default::default(),
                notes: Default::default(),
                reconcile: false,
                park: Some(DELETED_IN_SERVICENOW.into()),
            })
            .await?;
        Ok(Outcome::Gone {
            incident_id: link.link.incident_id,
        })
    }
}

/// The incident after the actions, in order, with their timeline entries; `None` when
/// none changes it. An action the incident's status no longer allows (acknowledging an
/// incident acknowledged meanwhile) is skipped: the incident already is what it asks.
fn apply_actions(
    incident: &Incident,
    actions: &[IncidentAction],
    actor: &str,
    now: DateTime<Utc>,
) -> ServiceResult<(Option<Incident>, Vec<TimelineEntry>)> {
    let mut current: Option<Incident> = None;
    let mut timeline = Vec::new();
    for action in actions {
        let change = match action {
            IncidentAction::Resolve { comment } => Change::Resolve {
                comment: comment.clone(),
            },
            IncidentAction::Reopen => Change::Reopen,
            IncidentAction::Acknowledge => Change::Acknowledge,
            IncidentAction::SetSeverity { severity } => Change::Edit {
                severity: Some(*severity),
                title: None,
                description: None,
            },
        };
        let before = current.as_ref().unwrap_or(incident);
        match apply(before, &change, actor, now) {
            Ok(Some((after, entries))) => {
                timeline.extend(entries);
                current = Some(after);
            }
            Ok(None) | Err(LifecycleError::Transition(_)) => {}
            // Values come from `decide`, which cuts close notes to a comment's limit and
            // replaces NUL: a refusal here is a broken rule of ours.
            Err(LifecycleError::Invalid(_)) => return Err(ServiceError::Internal(REFUSED)),
        }
    }
    Ok((current, timeline))
}

const REFUSED: &str = "an inbound change was refused by the incident's lifecycle";

/// When Snowbound last changed the incident's status and severity: the newest timeline
/// entry of each kind, else its creation.
fn incident_side(incident: &Incident, timeline: &[TimelineEntry]) -> IncidentSide {
    let last = |kinds: &[&str]| {
        timeline
            .iter()
            .filter(|e| kinds.contains(&e.kind.as_str()))
            .map(|e| e.at)
            .max()
            .unwrap_or(incident.created_at)
    };
    IncidentSide {
        status: incident.status,
        severity: incident.severity,
        status_changed_at: last(&["opened", "acknowledged", "resolved", "reopened"]),
        severity_changed_at: last(&["opened", "severity_changed"]),
    }
}

fn now_ms() -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(chrono::Duration::milliseconds(1))
        .unwrap_or_else(|_| Utc::now())
}
