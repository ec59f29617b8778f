//! The incident application service: every way an incident is born or changes goes
//! through here (HTTP handlers now, /ingest sources later), so each change gets its
//! timeline entry, bumps its links in the same transaction and wakes the engine.

use std::sync::Arc;

use chrono::{DateTime, Duration, DurationRound, Utc};
use snowbound_core::forwarding::check_forward;
use snowbound_core::validate::{check_text, limits};
use snowbound_core::{
    new_id, Attributes, ForwardingMode, Incident, IncidentStatus, Severity, TimelineEntry,
};
use snowbound_engine::EngineWaker;
use snowbound_store::{NewLink, Store, StoreError};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{check_field, ApiError, ApiResult};
use crate::routing::RoutingContext;

/// Optimistic concurrency: a change that loses a race re-reads and tries again this often
/// before telling the client to retry.
const MAX_ATTEMPTS: usize = 5;
pub const TITLE_MAX_CHARS: usize = limits::TITLE;

#[derive(Debug, Clone)]
pub struct NewIncident {
    pub team_id: Uuid,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub attributes: Attributes,
}

#[derive(Debug, Clone)]
pub enum Change {
    Edit {
        severity: Option<Severity>,
        title: Option<String>,
        description: Option<String>,
    },
    Acknowledge,
    Resolve {
        comment: Option<String>,
    },
    Reopen,
    /// An alert source's update of the incident its dedup key holds.
    Alert {
        title: String,
        description: Option<String>,
        severity: Severity,
        attributes: Option<Attributes>,
    },
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
}

impl IncidentService {
    pub fn new(store: Arc<dyn Store>, waker: EngineWaker) -> Self {
        IncidentService { store, waker }
    }

    pub async fn create(&self, caller: &Caller, new: NewIncident) -> ApiResult<Incident> {
        self.open(caller, new, None)
            .await?
            .ok_or_else(ApiError::internal)
    }

    /// Opens an incident; with `key` (source, dedup key) only while no unresolved
    /// incident holds that key, else `Ok(None)` and nothing is written.
    pub(crate) async fn open(
        &self,
        caller: &Caller,
        new: NewIncident,
        key: Option<(Uuid, &str)>,
    ) -> ApiResult<Option<Incident>> {
        if !caller.sees_team(new.team_id) {
            return Err(ApiError::invalid_field("team_id", "no such team"));
        }
        // Checked before the team, so a bad field is named even for a missing team.
        checked_title(&new.title)?;
        check_field("description", &new.description, limits::DESCRIPTION)?;
        check_attributes(&new.attributes)?;
        match self.store.get_team(new.team_id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(ApiError::invalid_field("team_id", "no such team"))
            }
            Err(e) => return Err(e.into()),
        }
        let routing = RoutingContext::load(&*self.store, new.team_id).await?;
        self.open_in(caller, new, key, &routing).await
    }

    /// [`Self::open`] for a team known to exist, with its routing already read (an
    /// alert body reads it once for all its alerts).
    pub(crate) async fn open_in(
        &self,
        caller: &Caller,
        new: NewIncident,
        key: Option<(Uuid, &str)>,
        routing: &RoutingContext,
    ) -> ApiResult<Option<Incident>> {
        let title = checked_title(&new.title)?;
        check_field("description", &new.description, limits::DESCRIPTION)?;
        check_attributes(&new.attributes)?;
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
        timeline.extend(routed.timeline);
        let links = routed.links;
        let written = match key {
            None => {
                self.store
                    .create_incident(&incident, &timeline, &links)
                    .await
            }
            Some((source_id, dedup_key)) => {
                self.store
                    .create_incident_for_key(source_id, dedup_key, &incident, &timeline, &links)
                    .await
            }
        };
        match written {
            Ok(()) => {}
            Err(StoreError::Conflict { field: "dedup_key" }) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        if !links.is_empty() {
            self.waker.wake();
        }
        Ok(Some(incident))
    }

    /// The incident if the caller may see it; another team's incident does not exist.
    pub async fn visible(&self, caller: &Caller, id: Uuid) -> ApiResult<Incident> {
        match self.store.get_incident(id).await {
            Ok(incident) if caller.sees_team(incident.team_id) => Ok(incident),
            Ok(_) | Err(StoreError::NotFound) => Err(ApiError::not_found("incident")),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies `change` to the current incident; a change that alters nothing writes
    /// nothing and answers the incident as it is.
    pub async fn change(&self, caller: &Caller, id: Uuid, change: Change) -> ApiResult<Incident> {
        for _ in 0..MAX_ATTEMPTS {
            let old = self.visible(caller, id).await?;
            match self.attempt(old, &change, &caller.actor).await? {
                Attempt::Unchanged(incident) | Attempt::Changed(incident) => return Ok(incident),
                Attempt::Stale => continue,
            }
        }
        Err(ApiError::conflict(
            "conflict",
            "the incident keeps changing concurrently; try again",
        ))
    }

    /// Writes `change` to `old` if nobody changed it since it was read, with the links
    /// the routing rules add now that it changed.
    pub(crate) async fn attempt(
        &self,
        old: Incident,
        change: &Change,
        actor: &str,
    ) -> ApiResult<Attempt> {
        let routing = RoutingContext::load(&*self.store, old.team_id).await?;
        self.attempt_in(old, change, actor, &routing).await
    }

    /// [`Self::attempt`] with the team's routing already read.
    pub(crate) async fn attempt_in(
        &self,
        old: Incident,
        change: &Change,
        actor: &str,
        routing: &RoutingContext,
    ) -> ApiResult<Attempt> {
        let now = now_ms();
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
        let routed = routing.after_change(&new, &linked, now);
        timeline.extend(routed.timeline);
        match self
            .store
            .update_incident(&new, old.updated_at, &timeline, &routed.links)
            .await
        {
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
    ) -> ApiResult<Incident> {
        let incident = self.visible(caller, id).await?;
        let no_such = || ApiError::invalid_field("integration_id", "no such integration");
        let integration = match self.store.get_integration(integration_id).await {
            Ok(record) if caller.sees_integration(&record.integration) => record.integration,
            Ok(_) | Err(StoreError::NotFound) => return Err(no_such()),
            Err(e) => return Err(e.into()),
        };
        check_forward(&integration, incident.team_id)
            .map_err(|e| ApiError::invalid_field("integration_id", e.to_string()))?;
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

    /// A user asks to try a parked (or backing-off) link now.
    pub async fn retry_link(
        &self,
        caller: &Caller,
        id: Uuid,
        integration_id: Uuid,
    ) -> ApiResult<Incident> {
        let incident = self.visible(caller, id).await?;
        match self.store.retry_link(id, integration_id).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(ApiError::not_found("link")),
            Err(e) => return Err(e.into()),
        }
        self.waker.wake();
        Ok(incident)
    }
}

impl IncidentService {
    /// A user asks to create again the ServiceNow record of a link parked because the
    /// record was deleted there. The engine looks it up by correlation id first, so a
    /// record restored meanwhile is adopted, not doubled.
    pub async fn recreate_link(
        &self,
        caller: &Caller,
        id: Uuid,
        integration_id: Uuid,
    ) -> ApiResult<Incident> {
        let incident = self.visible(caller, id).await?;
        let link = match self.store.get_link(id, integration_id).await {
            Ok(link) => link,
            Err(StoreError::NotFound) => return Err(ApiError::not_found("link")),
            Err(e) => return Err(e.into()),
        };
        let refused = || {
            ApiError::conflict(
                "record_not_gone",
                "only a link parked because its ServiceNow record no longer exists can be \
                 re-created; use retry for other problems",
            )
        };
        if !crate::views::record_gone(&link) {
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

/// The store keeps milliseconds; an incident whose times already have that precision
/// reads back exactly as it was written, and `updated_at` comparisons stay meaningful.
fn now_ms() -> DateTime<Utc> {
    let now = Utc::now();
    now.duration_trunc(Duration::milliseconds(1)).unwrap_or(now)
}

fn entry(at: DateTime<Utc>, actor: &str, kind: &str, detail: String) -> TimelineEntry {
    TimelineEntry {
        at,
        actor: actor.to_owned(),
        kind: kind.to_owned(),
        detail,
    }
}

fn checked_title(title: &str) -> ApiResult<String> {
    let title = title.trim();
    if title.is_empty() {
        return Err(ApiError::invalid_field("title", "is required"));
    }
    check_field("title", title, TITLE_MAX_CHARS)?;
    Ok(title.to_owned())
}

/// A bad name is not repeated in the field path: it may be the very text that is wrong.
pub(crate) fn check_attributes(attributes: &Attributes) -> ApiResult<()> {
    for (name, value) in attributes {
        check_text(name, limits::ATTRIBUTE_NAME).map_err(|message| {
            ApiError::invalid_field("attributes", format!("an attribute name {message}"))
        })?;
        check_field(
            &format!("attributes.{name}"),
            value,
            limits::ATTRIBUTE_VALUE,
        )?;
    }
    Ok(())
}

fn transition_error(from: IncidentStatus, action: &str, allowed_from: &str) -> ApiError {
    ApiError::conflict(
        "invalid_transition",
        format!("cannot {action} an incident that is {from}; only from {allowed_from}"),
    )
}

/// The incident after `change`, with its timeline entries; `None` when nothing changes.
/// Pure, so the rules of the lifecycle are testable without a store.
pub fn apply(
    old: &Incident,
    change: &Change,
    actor: &str,
    now: DateTime<Utc>,
) -> ApiResult<Option<(Incident, Vec<TimelineEntry>)>> {
    let mut new = old.clone();
    let mut timeline = Vec::new();
    match change {
        Change::Edit {
            severity,
            title,
            description,
        } => {
            if let Some(severity) = severity.filter(|s| *s != old.severity) {
                timeline.push(entry(
                    now,
                    actor,
                    "severity_changed",
                    format!("severity {} → {}", old.severity, severity),
                ));
                new.severity = severity;
            }
            if let Some(title) = title {
                let title = checked_title(title)?;
                if title != old.title {
                    timeline.push(entry(
                        now,
                        actor,
                        "title_changed",
                        format!("title: {title}"),
                    ));
                    new.title = title;
                }
            }
            if let Some(description) = description {
                check_field("description", description, limits::DESCRIPTION)?;
            }
            if let Some(description) = description.as_ref().filter(|d| **d != old.description) {
                timeline.push(entry(
                    now,
                    actor,
                    "description_changed",
                    "description edited".into(),
                ));
                new.description = description.clone();
            }
        }
        Change::Acknowledge => {
            if old.status != IncidentStatus::Open {
                return Err(transition_error(old.status, "acknowledge", "open"));
            }
            new.status = IncidentStatus::Acknowledged;
            timeline.push(entry(now, actor, "acknowledged", "acknowledged".into()));
        }
        Change::Resolve { comment } => {
            if old.status == IncidentStatus::Resolved {
                return Err(transition_error(
                    old.status,
                    "resolve",
                    "open or acknowledged",
                ));
            }
            if let Some(comment) = comment {
                check_field("comment", comment, limits::COMMENT)?;
            }
            let comment = comment
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned);
            new.status = IncidentStatus::Resolved;
            timeline.push(entry(
                now,
                actor,
                "resolved",
                match &comment {
                    Some(comment) => format!("resolved: {comment}"),
                    None => "resolved".into(),
                },
            ));
            new.resolve_comment = comment;
        }
        Change::Reopen => {
            if old.status != IncidentStatus::Resolved {
                return Err(transition_error(old.status, "reopen", "resolved"));
            }
            new.status = IncidentStatus::Open;
            // A later resolve without a comment must fall back to the configured notes.
            new.resolve_comment = None;
            timeline.push(entry(now, actor, "reopened", "reopened".into()));
        }
        Change::Alert {
            title,
            description,
            severity,
            attributes,
        } => {
            let edit = Change::Edit {
                severity: Some(*severity),
                title: Some(title.clone()),
                description: description.clone(),
            };
            if let Some((edited, entries)) = apply(old, &edit, actor, now)? {
                new = edited;
                timeline = entries;
            }
            if let Some(attributes) = attributes {
                check_attributes(attributes)?;
            }
            if let Some(attributes) = attributes.as_ref().filter(|a| **a != old.attributes) {
                new.attributes = attributes.clone();
                timeline.push(entry(
                    now,
                    actor,
                    "attributes_changed",
                    "attributes updated".into(),
                ));
            }
        }
    }
    if timeline.is_empty() {
        return Ok(None);
    }
    // The store compares updated_at (in milliseconds) for optimistic concurrency, so two
    // changes within one millisecond must still differ.
    new.updated_at = if now > old.updated_at {
        now
    } else {
        old.updated_at + Duration::milliseconds(1)
    };
    Ok(Some((new, timeline)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(status: IncidentStatus) -> Incident {
        let now = Utc::now();
        Incident {
            id: new_id(),
            team_id: new_id(),
            title: "Disk full".into(),
            description: String::new(),
            severity: Severity::Warning,
            status,
            attributes: Attributes::new(),
            resolve_comment: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn status_after(status: IncidentStatus, change: Change) -> ApiResult<IncidentStatus> {
        let old = incident(status);
        let applied = apply(&old, &change, "alice", Utc::now())?;
        Ok(applied.map(|(new, _)| new.status).unwrap_or(old.status))
    }

    #[test]
    fn lifecycle_transitions() {
        use IncidentStatus::*;
        assert_eq!(
            status_after(Open, Change::Acknowledge).unwrap(),
            Acknowledged
        );
        assert!(status_after(Acknowledged, Change::Acknowledge).is_err());
        assert!(status_after(Resolved, Change::Acknowledge).is_err());
        let resolve = || Change::Resolve { comment: None };
        assert_eq!(status_after(Open, resolve()).unwrap(), Resolved);
        assert_eq!(status_after(Acknowledged, resolve()).unwrap(), Resolved);
        let err = status_after(Resolved, resolve()).unwrap_err();
        assert_eq!(err.code, "invalid_transition");
        assert_eq!(status_after(Resolved, Change::Reopen).unwrap(), Open);
        assert!(status_after(Open, Change::Reopen).is_err());
    }

    #[test]
    fn reopen_clears_the_resolve_comment() {
        let mut old = incident(IncidentStatus::Resolved);
        old.resolve_comment = Some("fixed".into());
        let (new, timeline) = apply(&old, &Change::Reopen, "bob", Utc::now())
            .unwrap()
            .unwrap();
        assert_eq!(new.resolve_comment, None);
        assert_eq!(timeline[0].actor, "bob");
    }

    #[test]
    fn edits_that_change_nothing_write_nothing() {
        let old = incident(IncidentStatus::Open);
        let same = Change::Edit {
            severity: Some(old.severity),
            title: Some(format!("  {}  ", old.title)),
            description: None,
        };
        assert!(apply(&old, &same, "a", Utc::now()).unwrap().is_none());
        let blank = Change::Edit {
            severity: None,
            title: Some("  ".into()),
            description: None,
        };
        let err = apply(&old, &blank, "a", Utc::now()).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("title"));
    }

    #[test]
    fn updated_at_always_moves_forward() {
        let old = incident(IncidentStatus::Open);
        let past = old.updated_at - Duration::seconds(5);
        let (new, _) = apply(&old, &Change::Acknowledge, "a", past)
            .unwrap()
            .unwrap();
        assert!(new.updated_at > old.updated_at);
    }
}
