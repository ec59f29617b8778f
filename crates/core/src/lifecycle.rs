//! The incident lifecycle: what a change does to an incident and its timeline, and which
//! transitions are allowed (acknowledge from open, resolve unless resolved, reopen from
//! resolved). Pure, so every rule is testable without a store; the incident service
//! applies it and writes the result.

use chrono::{DateTime, Duration, Utc};

use crate::checks::{check_attributes, checked_title};
use crate::model::{Attributes, Incident, IncidentStatus, Severity, TimelineEntry};
use crate::validate::{check_field, limits, FieldError};

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

/// A change the incident's status does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} an incident that is {from}; only from {allowed_from}")]
pub struct TransitionError {
    pub from: IncidentStatus,
    pub action: &'static str,
    pub allowed_from: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// A value of the change is not storable (a blank title, a NUL, too long).
    #[error(transparent)]
    Invalid(#[from] FieldError),
}

/// A timeline entry of `kind` by `actor`.
pub fn entry(at: DateTime<Utc>, actor: &str, kind: &str, detail: String) -> TimelineEntry {
    TimelineEntry {
        at,
        actor: actor.to_owned(),
        kind: kind.to_owned(),
        detail,
    }
}

fn refuse(
    from: IncidentStatus,
    action: &'static str,
    allowed_from: &'static str,
) -> LifecycleError {
    TransitionError {
        from,
        action,
        allowed_from,
    }
    .into()
}

/// The incident after `change`, with its timeline entries; `None` when nothing changes.
pub fn apply(
    old: &Incident,
    change: &Change,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Option<(Incident, Vec<TimelineEntry>)>, LifecycleError> {
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
                return Err(refuse(old.status, "acknowledge", "open"));
            }
            new.status = IncidentStatus::Acknowledged;
            timeline.push(entry(now, actor, "acknowledged", "acknowledged".into()));
        }
        Change::Resolve { comment } => {
            if old.status == IncidentStatus::Resolved {
                return Err(refuse(old.status, "resolve", "open or acknowledged"));
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
                return Err(refuse(old.status, "reopen", "resolved"));
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
    use crate::new_id;

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
            source_id: None,
            created_at: now,
            updated_at: now,
        }
    }

    fn status_after(
        status: IncidentStatus,
        change: Change,
    ) -> Result<IncidentStatus, LifecycleError> {
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
        assert_eq!(status_after(Resolved, Change::Reopen).unwrap(), Open);
        assert!(status_after(Open, Change::Reopen).is_err());
    }

    #[test]
    fn a_refused_transition_says_what_and_from_where() {
        let err =
            status_after(IncidentStatus::Resolved, Change::Resolve { comment: None }).unwrap_err();
        let LifecycleError::Transition(refused) = &err else {
            panic!("not a transition error: {err:?}")
        };
        assert_eq!(refused.from, IncidentStatus::Resolved);
        assert_eq!(
            err.to_string(),
            "cannot resolve an incident that is resolved; only from open or acknowledged"
        );
    }

    #[test]
    fn resolve_keeps_a_trimmed_comment_and_reopen_clears_it() {
        let old = incident(IncidentStatus::Acknowledged);
        let resolve = Change::Resolve {
            comment: Some("  fixed ".into()),
        };
        let (resolved, timeline) = apply(&old, &resolve, "a", Utc::now()).unwrap().unwrap();
        assert_eq!(resolved.resolve_comment.as_deref(), Some("fixed"));
        assert_eq!(timeline[0].detail, "resolved: fixed");
        let (new, timeline) = apply(&resolved, &Change::Reopen, "bob", Utc::now())
            .unwrap()
            .unwrap();
        assert_eq!(new.resolve_comment, None);
        assert_eq!(timeline[0].actor, "bob");
        let blank = Change::Resolve {
            comment: Some("  ".into()),
        };
        let (resolved, _) = apply(&old, &blank, "a", Utc::now()).unwrap().unwrap();
        assert_eq!(resolved.resolve_comment, None);
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
        assert_eq!(
            err,
            LifecycleError::Invalid(FieldError::new("title", "is required"))
        );
    }

    #[test]
    fn an_alert_update_changes_attributes_and_names_bad_ones() {
        let old = incident(IncidentStatus::Open);
        let alert = |attributes: Attributes| Change::Alert {
            title: old.title.clone(),
            description: None,
            severity: old.severity,
            attributes: Some(attributes),
        };
        let host: Attributes = [("host".to_owned(), "db-1".to_owned())].into();
        let (new, timeline) = apply(&old, &alert(host), "src", Utc::now())
            .unwrap()
            .unwrap();
        assert_eq!(new.attributes["host"], "db-1");
        assert_eq!(timeline[0].kind, "attributes_changed");
        let bad: Attributes = [("host".to_owned(), "\u{0}".to_owned())].into();
        let Err(LifecycleError::Invalid(e)) = apply(&old, &alert(bad), "src", Utc::now()) else {
            panic!("accepted a NUL")
        };
        assert_eq!(e.field, "attributes.host");
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
