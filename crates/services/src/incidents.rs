//! The incident service: every way an incident is born or changes goes through here
//! (the API, the web UI, alert sources; the engine's inbound direction later), so each
//! change gets its timeline entry, bumps its links in the same transaction and wakes the
//! engine. What a change does is [`snowbound_core::lifecycle`]; this writes it.

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use snowbound_core::checks::{check_attributes, checked_title};
use snowbound_core::forwarding::check_forward;
use snowbound_core::lifecycle::{apply, entry};
use snowbound_core::routing::keep_rule_edits;

use crate::routing_links::RoutingContext;
use snowbound_core::validate::{check_field, limits};
use snowbound_core::{new_id, Attributes, ForwardingMode, Incident, IncidentStatus, Severity};
use snowbound_store::{
    GroupCommit, IncidentFilter, IncidentWrite, Link, LinkState, NewLink, RuleFiring, Store,
    StoreError,
};
use uuid::Uuid;

pub use snowbound_core::lifecycle::Change;

use crate::caller::Caller;
use crate::error::{ServiceError, ServiceResult};
use crate::incident_search::{cursor_after, parse_cursor, parse_search};
use crate::lookups::Lookups;
use crate::scope::{named, visible};
use crate::waker::EngineWaker;

/// Optimistic concurrency: a change that loses a race re-reads and tries again this often
/// before telling the client to retry.
const MAX_ATTEMPTS: usize = 5;

const DEFAULT_LIMIT: u32 = 200;
const MAX_LIMIT: u32 = 1000;

#[derive(Debug, Clone)]
pub struct NewIncident {
    pub team_id: Uuid,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub attributes: Attributes,
}

/// Which incidents to list; `team_id` narrows to one of the caller's teams.
#[derive(Debug, Clone, Default)]
pub struct IncidentQuery {
    pub status: Option<IncidentStatus>,
    pub severity: Option<Severity>,
    pub team_id: Option<Uuid>,
    pub limit: Option<u32>,
    /// Search terms, see [`crate::incident_search`].
    pub q: Option<String>,
    /// A cursor a previous page answered: the incidents after that page.
    pub before: Option<String>,
}

/// A page of the incidents list; `next` is the cursor of the page after it, if any.
#[derive(Debug, Clone, Default)]
pub struct IncidentPage {
    pub incidents: Vec<Incident>,
    pub next: Option<String>,
}

/// What opening an incident came to.
pub(crate) enum Opening {
    Opened(Incident),
    /// An unresolved incident holds the key already (this one, as committed): update it.
    KeyHeld(Box<Incident>),
    /// A routing rule discarded the alert.
    Discarded,
}

/// One try at writing a change.
pub(crate) enum Attempt {
    Unchanged(Incident),
    Changed(Incident),
    /// Someone changed the incident since it was read: read again and retry.
    Stale,
}

#[derive(Clone)]
pub struct IncidentService {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) waker: EngineWaker,
    /// Incident writes share commits with whatever else is being written at the moment;
    /// `None` writes each in a transaction of its own.
    writer: Option<GroupCommit>,
    /// Sources, teams and routing as cached for the node.
    pub(crate) lookups: Arc<Lookups>,
}

impl IncidentService {
    pub fn new(store: Arc<dyn Store>, waker: EngineWaker) -> Self {
        IncidentService {
            store,
            waker,
            writer: None,
            lookups: Arc::default(),
        }
    }

    /// Reads sources, teams and routing through the node's cache (a service of its own
    /// otherwise caches for itself only).
    pub fn with_lookups(mut self, lookups: Arc<Lookups>) -> Self {
        self.lookups = lookups;
        self
    }

    /// Writes through `writer`, the node's one group committer.
    pub fn with_group_commit(mut self, writer: GroupCommit) -> Self {
        self.writer = Some(writer);
        self
    }

    /// One incident write, answered once it is committed.
    async fn write(&self, write: IncidentWrite) -> Result<(), StoreError> {
        match &self.writer {
            Some(writer) => writer.write(write).await,
            None => self
                .store
                .write_incidents(std::slice::from_ref(&write))
                .await?
                .pop()
                .unwrap_or(Ok(())),
        }
    }

    pub async fn create(&self, caller: &Caller, new: NewIncident) -> ServiceResult<Incident> {
        if !caller.sees_team(new.team_id) {
            return Err(ServiceError::invalid("team_id", "no such team"));
        }
        // Checked before the team, so a bad field is named even for a missing team.
        check_new(&new)?;
        match self.lookups.team(&*self.store, new.team_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(ServiceError::invalid("team_id", "no such team"))
            }
            Err(e) => return Err(e.into()),
        }
        let routing = self.lookups.routing(&*self.store, new.team_id).await?;
        match self.open_in(caller, new, None, &routing).await? {
            Opening::Opened(incident) => Ok(incident),
            // Without a key nothing can hold it, and only alerts are discarded.
            Opening::KeyHeld(_) | Opening::Discarded => Err(ServiceError::Internal(
                "an incident without a key was not opened",
            )),
        }
    }

    /// Opens an incident in a team known to exist, with its routing already read (an
    /// alert body reads it once for all its alerts). With `key` (source, dedup key) only
    /// while no unresolved incident holds that key, else `KeyHeld` with the holder and
    /// nothing is written; an alert a routing rule discards writes only its history row.
    pub(crate) async fn open_in(
        &self,
        caller: &Caller,
        new: NewIncident,
        key: Option<(Uuid, &str)>,
        routing: &RoutingContext,
    ) -> ServiceResult<Opening> {
        let title = check_new(&new)?;
        let now = now_ms();
        let incident = Incident {
            id: new_id(),
            team_id: new.team_id,
            title,
            description: new.description,
            severity: new.severity,
            status: IncidentStatus::Open,
            attributes: new.attributes,
            resolve_comment: None,
            source_id: key.map(|(source_id, _)| source_id),
            created_at: now,
            updated_at: now,
        };
        let mut timeline = vec![entry(
            now,
            &caller.actor,
            "opened",
            format!("opened with severity {}", incident.severity),
        )];
        let routed = routing.at_open(&incident, &caller.actor, now);
        if let Some(rule) = routed.discard {
            let detail = match key {
                Some((_, dedup_key)) => format!("discarded alert {dedup_key}: {}", incident.title),
                None => format!("discarded: {}", incident.title),
            };
            let firing = RuleFiring {
                team_id: incident.team_id,
                rule_id: rule.rule_id,
                rule_name: rule.rule_name.clone(),
                incident_id: None,
                kind: "discarded".into(),
                detail,
                at: now,
            };
            self.store.record_firings(&[firing]).await?;
            return Ok(Opening::Discarded);
        }
        let incident = routed.incident;
        timeline.extend(routed.timeline);
        let links = routed.links;
        let linked = !links.is_empty();
        let written = self
            .write(IncidentWrite::Create {
                incident: incident.clone(),
                timeline,
                links,
                dedup_key: key.map(|(source_id, dedup_key)| (source_id, dedup_key.to_owned())),
                routing: routed.routing,
            })
            .await;
        match written {
            Ok(()) => {}
            Err(StoreError::KeyHeld(holder)) if key.is_some() => {
                return Ok(Opening::KeyHeld(holder))
            }
            Err(e) => return Err(e.into()),
        }
        if linked {
            self.waker.wake();
        }
        Ok(Opening::Opened(incident))
    }

    /// The incident if the caller may see it; another team's incident does not exist.
    pub async fn visible(&self, caller: &Caller, id: Uuid) -> ServiceResult<Incident> {
        visible(caller, self.store.get_incident(id)).await
    }

    /// Newest first (ties by id), within the caller's teams, a page at a time.
    pub async fn list(&self, caller: &Caller, query: IncidentQuery) -> ServiceResult<IncidentPage> {
        let search = parse_search(query.q.as_deref().unwrap_or_default())?;
        let before = query.before.as_deref().map(parse_cursor).transpose()?;
        let team_ids = match (query.team_id, caller.team_filter()) {
            (Some(team), _) if !caller.sees_team(team) => return Ok(IncidentPage::default()),
            (Some(team), _) => Some(vec![team]),
            (None, filter) => filter,
        };
        if team_ids.as_ref().is_some_and(Vec::is_empty) {
            return Ok(IncidentPage::default());
        }
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
        // One more than asked tells whether a next page exists.
        let filter = IncidentFilter {
            team_ids,
            status: query.status,
            severity: query.severity,
            title_contains: search.title_contains,
            attributes: search.attributes,
            before,
            limit: Some(limit + 1),
        };
        let mut incidents = self.store.list_incidents(&filter).await?;
        let next = if incidents.len() > limit as usize {
            incidents.truncate(limit as usize);
            incidents.last().map(cursor_after)
        } else {
            None
        };
        Ok(IncidentPage { incidents, next })
    }

    /// Applies `change` to the current incident; a change that alters nothing writes
    /// nothing and answers the incident as it is.
    pub async fn change(
        &self,
        caller: &Caller,
        id: Uuid,
        change: Change,
    ) -> ServiceResult<Incident> {
        for _ in 0..MAX_ATTEMPTS {
            let old = self.visible(caller, id).await?;
            let routing = self.lookups.routing(&*self.store, old.team_id).await?;
            match self
                .attempt_in(old, &change, &caller.actor, &routing)
                .await?
            {
                Attempt::Unchanged(incident) | Attempt::Changed(incident) => return Ok(incident),
                Attempt::Stale => continue,
            }
        }
        Err(ServiceError::keeps_changing(
            "the incident keeps changing concurrently; try again",
        ))
    }

    /// Writes `change` to `old` if nobody changed it since it was read, with the links
    /// the routing rules add now that it changed.
    pub(crate) async fn attempt_in(
        &self,
        old: Incident,
        change: &Change,
        actor: &str,
        routing: &crate::routing_links::RoutingContext,
    ) -> ServiceResult<Attempt> {
        let now = now_ms();
        // A team without rules has nothing that fired: no read for its alerts' repeats.
        let fired = if routing.rules.is_empty() {
            Vec::new()
        } else {
            self.store.fired_rules(old.id).await?
        };
        let kept;
        let change = match change {
            // What fired rules set on the incident, an alert's repeat does not undo.
            Change::Alert {
                title,
                description,
                severity,
                attributes,
            } if !fired.is_empty() => {
                let (mut severity, mut attributes) = (*severity, attributes.clone());
                keep_rule_edits(
                    &routing.rules,
                    old.team_id,
                    &fired,
                    &mut severity,
                    &mut attributes,
                );
                kept = Change::Alert {
                    title: title.clone(),
                    description: description.clone(),
                    severity,
                    attributes,
                };
                &kept
            }
            other => other,
        };
        let Some((new, mut timeline)) = apply(&old, change, actor, now)? else {
            return Ok(Attempt::Unchanged(old));
        };
        let linked: Vec<Uuid> = self
            .store
            .links_of_incident(old.id)
            .await?
            .into_iter()
            .map(|l| l.integration_id)
            .collect();
        let routed = routing.after_change(&new, &linked, &fired, now);
        let new = routed.incident;
        timeline.extend(routed.timeline);
        let written = self
            .write(IncidentWrite::Update {
                incident: new.clone(),
                expected_updated_at: old.updated_at,
                timeline,
                new_links: routed.links,
                routing: routed.routing,
            })
            .await;
        match written {
            Ok(()) => {
                self.waker.wake();
                Ok(Attempt::Changed(new))
            }
            Err(StoreError::Stale) => Ok(Attempt::Stale),
            Err(e) => Err(e.into()),
        }
    }

    /// A user's forward to an integration of the incident's team. `only_on_forwarding`
    /// links freeze what was forwarded; the other modes follow the live incident.
    pub async fn forward(
        &self,
        caller: &Caller,
        id: Uuid,
        integration_id: Uuid,
    ) -> ServiceResult<Incident> {
        let incident = self.visible(caller, id).await?;
        let integration = match visible(caller, self.store.get_integration(integration_id)).await {
            Ok(record) => record.integration,
            Err(ServiceError::NotFound { .. }) => {
                return Err(ServiceError::invalid(
                    "integration_id",
                    "no such integration",
                ))
            }
            Err(e) => return Err(e),
        };
        check_forward(&integration, incident.team_id)
            .map_err(|e| ServiceError::invalid("integration_id", e.to_string()))?;
        let snapshot = (integration.forwarding == ForwardingMode::OnlyOnForwarding)
            .then(|| incident.snapshot());
        let link = NewLink {
            incident_id: incident.id,
            integration_id,
            snapshot,
        };
        let timeline = entry(
            Utc::now(),
            &caller.actor,
            "forwarded",
            format!("forwarded to {}", integration.display_name),
        );
        self.store.forward(&link, &timeline).await?;
        self.waker.wake();
        Ok(incident)
    }

    /// A comment on the incident's timeline; linked records get it as a work note.
    pub async fn comment(&self, caller: &Caller, id: Uuid, text: &str) -> ServiceResult<Incident> {
        const COMMENT_MAX_CHARS: usize = 4000;
        let incident = self.visible(caller, id).await?;
        if text.trim().is_empty() {
            return Err(ServiceError::invalid("text", "is required"));
        }
        if text.chars().count() > COMMENT_MAX_CHARS {
            return Err(ServiceError::invalid(
                "text",
                format!("is longer than {COMMENT_MAX_CHARS} characters"),
            ));
        }
        if text.contains('\0') {
            return Err(ServiceError::invalid("text", "contains a NUL character"));
        }
        self.store
            .add_comment(incident.id, &caller.actor, text, Utc::now())
            .await?;
        self.waker.wake();
        self.visible(caller, id).await
    }

    /// A user asks to try a parked (or backing-off) link now.
    pub async fn retry_link(
        &self,
        caller: &Caller,
        id: Uuid,
        integration_id: Uuid,
    ) -> ServiceResult<Incident> {
        let incident = self.visible(caller, id).await?;
        named(self.store.retry_link(id, integration_id).await, "link")?;
        self.waker.wake();
        Ok(incident)
    }

    /// A user asks to create again the ServiceNow record of a link parked because the
    /// record was deleted there. The engine looks it up by correlation id first, so a
    /// record restored meanwhile is adopted, not doubled.
    pub async fn recreate_link(
        &self,
        caller: &Caller,
        id: Uuid,
        integration_id: Uuid,
    ) -> ServiceResult<Incident> {
        let incident = self.visible(caller, id).await?;
        let link = named(self.store.get_link(id, integration_id).await, "link")?;
        let refused = || ServiceError::Conflict {
            code: "record_not_gone",
            message: "only a link parked because its ServiceNow record no longer exists can \
                      be re-created; use retry for other problems"
                .into(),
            field: None,
        };
        if !record_gone(&link) {
            return Err(refused());
        }
        match self.store.recreate_link(id, integration_id).await {
            Ok(()) => {}
            // Changed meanwhile (a retry or a settings change woke it).
            Err(StoreError::NotFound) => return Err(refused()),
            Err(e) => return Err(e.into()),
        }
        self.waker.wake();
        Ok(incident)
    }
}

/// The engine parks a link whose record answers 404 with these words (and never re-creates
/// it on its own); only such a link may be re-created.
const RECORD_GONE: &str = "no longer exists";

/// Parked because its ServiceNow record no longer exists: `…/recreate` may create it again.
pub fn record_gone(link: &Link) -> bool {
    link.state == LinkState::Parked
        && link.sys_id.is_some()
        && link
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains(RECORD_GONE) || e == crate::inbound::DELETED_IN_SERVICENOW)
}

/// The checks of a new incident's fields; the trimmed title.
fn check_new(new: &NewIncident) -> ServiceResult<String> {
    let title = checked_title(&new.title)?;
    check_field("description", &new.description, limits::DESCRIPTION)?;
    check_attributes(&new.attributes)?;
    Ok(title)
}

/// The store keeps milliseconds; an incident whose times already have that precision
/// reads back exactly as it was written, and `updated_at` comparisons stay meaningful.
fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    now.duration_trunc(Duration::milliseconds(1)).unwrap_or(now)
}
