//! Inbound sync, pure: what a ServiceNow record as read means for the Snowbound incident
//! linked to it. The loop-prevention rules of `docs/SYNC_RULES.md` are functions here,
//! each with its unit test:
//!
//! - [`already_applied`]: each `sys_mod_count` is applied at most once;
//! - [`own_write`]: a change written by Snowbound's own ServiceNow user is an echo;
//! - [`is_echo`]: a value equal to what Snowbound pushed costs nothing;
//! - [`pushed_after_inbound`]: an applied inbound change is recorded as pushed, so the
//!   outbound reconcile never sends it back;
//! - [`reassert_again`]: Snowbound re-asserts a value once per ServiceNow value, so two
//!   systems flip-flopping settle.
//!
//! The record is only ever read by Snowbound itself (a poke carries no field values).

pub mod born;
pub mod business_rule;
pub mod settings;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::model::{IncidentStatus, ServiceNowSettings, Severity};
use crate::sync::{FieldMap, STATE_FIELD};
pub use settings::{
    Delivery, ServiceNowSourceSettings, Transitions, WhoWins, Winner, DEFAULT_POLL_INTERVAL_S,
    MIN_POLL_INTERVAL_S,
};

/// The base instance's Closed and Canceled states: both end an incident as Resolved does.
pub const STATE_CLOSED: &str = "7";
pub const STATE_CANCELED: &str = "8";

/// `sys_updated_on` and the other `glide_date_time` raw values: UTC, to the second.
pub const SERVICENOW_TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

pub fn parse_servicenow_time(text: &str) -> Option<DateTime<Utc>> {
    NaiveDateTime::parse_from_str(text.trim(), SERVICENOW_TIME_FORMAT)
        .ok()
        .map(|t| Utc.from_utc_datetime(&t))
}

pub fn format_servicenow_time(time: DateTime<Utc>) -> String {
    time.format(SERVICENOW_TIME_FORMAT).to_string()
}

/// A ServiceNow record as Snowbound read it over the Table API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRecord {
    pub sys_id: String,
    pub number: String,
    /// Raw values (`"6"`, sys_ids of references).
    pub values: FieldMap,
    /// What a person sees (`"Resolved"`, a group's name); empty when not asked for.
    pub display: FieldMap,
    pub updated_by: String,
    pub updated_on: DateTime<Utc>,
    pub mod_count: i64,
}

impl SeenRecord {
    /// Reads the bookkeeping fields every inbound decision needs; the message names the
    /// one missing or unreadable (a field ACL may hide it).
    pub fn new(values: FieldMap, display: FieldMap) -> Result<SeenRecord, String> {
        let get = |field: &str| {
            values
                .get(field)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("the record has no `{field}`"))
        };
        let sys_id = get("sys_id")?.to_owned();
        let updated_on = get("sys_updated_on")
            .and_then(|v| parse_servicenow_time(v).ok_or(format!("bad sys_updated_on `{v}`")))?;
        let mod_count = get("sys_mod_count").and_then(|v| {
            v.parse::<i64>()
                .map_err(|_| format!("bad sys_mod_count `{v}`"))
        })?;
        Ok(SeenRecord {
            sys_id,
            number: values.get("number").cloned().unwrap_or_default(),
            updated_by: values.get("sys_updated_by").cloned().unwrap_or_default(),
            updated_on,
            mod_count,
            values,
            display,
        })
    }

    pub fn value(&self, field: &str) -> Option<&str> {
        self.values.get(field).map(String::as_str)
    }

    pub fn display_value(&self, field: &str) -> Option<&str> {
        self.display
            .get(field)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// The fields inbound reads of a record under `settings`: the decision's, the
/// ServiceNow-born incident's, and the bookkeeping.
pub fn fields_to_read(settings: &ServiceNowSettings) -> Vec<String> {
    let mut fields: Vec<String> = [
        "sys_id",
        "number",
        "sys_updated_on",
        "sys_updated_by",
        "sys_created_by",
        "sys_mod_count",
        STATE_FIELD,
        "short_description",
        "description",
        "correlation_id",
        "correlation_display",
        born::ASSIGNMENT_GROUP,
        born::CALLER,
        born::CI,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    fields.push(settings.severity.primary_field.clone());
    fields.push(settings.close_notes_field.clone());
    fields.sort();
    fields.dedup();
    fields
}

/// What Snowbound knows about the link, next to the record.
#[derive(Debug, Clone, Copy)]
pub struct LinkSide<'a> {
    /// What Snowbound believes ServiceNow holds: everything it pushed (and inbound
    /// changes recorded as pushed).
    pub pushed: &'a FieldMap,
    /// The highest `sys_mod_count` inbound has applied on this link.
    pub applied_mod_count: Option<i64>,
    /// The notes standing on the link, by field.
    pub notes: &'a BTreeMap<String, LinkNote>,
    /// A reconcile is waiting or in flight (the link is not synced): `pushed` may not
    /// hold what Snowbound is sending right now.
    pub reconcile_pending: bool,
}

/// The incident as it is now, with when Snowbound last changed each synced field
/// (its creation time when never).
#[derive(Debug, Clone, Copy)]
pub struct IncidentSide {
    pub status: IncidentStatus,
    pub severity: Severity,
    pub status_changed_at: DateTime<Utc>,
    pub severity_changed_at: DateTime<Utc>,
}

/// The rules a decision applies: the integration's mapping and who-wins settings, the
/// source's transitions.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub settings: &'a ServiceNowSettings,
    pub transitions: Transitions,
    /// The ServiceNow user Snowbound writes as (`sys_updated_by` of its own writes).
    pub own_user: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum IncidentAction {
    /// The close notes become the resolve comment.
    Resolve {
        comment: Option<String>,
    },
    Reopen,
    Acknowledge,
    SetSeverity {
        severity: Severity,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    /// ServiceNow changed the field, Snowbound won and pushes its value again.
    Reasserted,
    /// ServiceNow holds another value than Snowbound's and Snowbound leaves it: the
    /// transition is off, the value is not in the mapping, or ServiceNow overrode a
    /// re-assertion.
    Drift,
}

/// What the link shows about one field ServiceNow and Snowbound disagree on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LinkNote {
    pub field: String,
    pub kind: NoteKind,
    pub servicenow_value: String,
    pub snowbound_value: String,
    /// Who changed it in ServiceNow (`sys_updated_by`) and when (`sys_updated_on`).
    pub by: String,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// Why a record read changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    /// Its `sys_mod_count` was applied already (or is older than one that was).
    AlreadyApplied,
    /// Snowbound's own ServiceNow user wrote it while the link's reconcile is still
    /// being recorded. The caller reads the record again once the link is synced: an
    /// agent's earlier update that this write hides is found then, against an exact
    /// `pushed`.
    OwnWrite,
    /// Every field holds what Snowbound pushed, or what the incident already is.
    Echo,
}

/// An inbound change to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// Recorded as applied once everything below is written.
    pub mod_count: i64,
    /// The ServiceNow user who made the change (`sys_updated_by`) and the record.
    pub by: String,
    pub number: String,
    /// Applied to the incident in this order, each on the timeline.
    pub actions: Vec<IncidentAction>,
    /// Fields whose outbound value, computed from the incident *after* the actions, is
    /// recorded as pushed ([`pushed_after_inbound`]).
    pub touched: Vec<String>,
    /// What ServiceNow holds, merged into `pushed` so the next reconcile sends
    /// Snowbound's value again (a re-assertion).
    pub servicenow_holds: FieldMap,
    /// Notes to set (`Some`) or clear (`None`) on the link, by field.
    pub notes: BTreeMap<String, Option<LinkNote>>,
}

impl Inbound {
    /// The timeline actor of this change.
    pub fn actor(&self) -> String {
        if self.number.is_empty() {
            format!("{} in ServiceNow", self.by)
        } else {
            format!("{} in ServiceNow {}", self.by, self.number)
        }
    }

    /// The reconcile must look at the link again (a re-assertion is waiting).
    pub fn needs_reconcile(&self) -> bool {
        !self.servicenow_holds.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Nothing(Quiet),
    Apply(Inbound),
}

/// Rule: each ServiceNow update is applied at most once. `sys_mod_count` rises by one
/// per update, so a read at or below the applied count is a repeat (a poke and a poll
/// seeing one update, the overlap of two polls, a late answer to an older read).
pub fn already_applied(record_mod_count: i64, applied: Option<i64>) -> bool {
    applied.is_some_and(|applied| record_mod_count <= applied)
}

/// Rule: what Snowbound's own ServiceNow user wrote while the link's reconcile is not
/// recorded yet is Snowbound's own change coming back (the business rule's poke is read
/// before the PATCH's answer reaches `pushed`, and the incident may have moved on since
/// the PATCH left). Once the link is synced the write is judged like any other: its
/// values equal `pushed` and are echoes, and a value that is neither pushed nor what the
/// incident is came from someone else's update that this write hides.
pub fn own_write(updated_by: &str, own_user: Option<&str>, reconcile_pending: bool) -> bool {
    reconcile_pending
        && own_user
            .is_some_and(|own| !own.is_empty() && own.eq_ignore_ascii_case(updated_by.trim()))
}

/// Rule: a value ServiceNow holds that equals what Snowbound pushed is an echo. A field
/// the read did not return (an ACL hides it) is no news either.
pub fn is_echo(field: &str, record: &SeenRecord, pushed: &FieldMap) -> bool {
    match record.value(field) {
        None => true,
        Some(value) => pushed.get(field).map(String::as_str) == Some(value),
    }
}

/// Rule: after an inbound change is applied, the link's `pushed` takes the outbound
/// value of every field the change touched, computed from the incident as it is now
/// (`desired_after` = `servicenow_fields(incident after)`). The next reconcile's diff
/// then holds none of them: Snowbound never sends ServiceNow's change back, not even
/// in its own words (Closed `7` is not "corrected" to Resolved `6`), and pushes the
/// field again only when it changes in Snowbound.
pub fn pushed_after_inbound(desired_after: &FieldMap, touched: &[String]) -> FieldMap {
    touched
        .iter()
        .filter_map(|field| {
            desired_after
                .get(field)
                .map(|value| (field.clone(), value.clone()))
        })
        .collect()
}

/// Rule: Snowbound re-asserts a field once per ServiceNow value. When ServiceNow puts
/// back the very value Snowbound already re-asserted over (an automation there reverting
/// it), a note with the same two values stands on the link: Snowbound stops and shows
/// drift instead of pushing again, so the two settle after one call. A change in
/// Snowbound (another `snowbound_value`) or in ServiceNow (another `servicenow_value`)
/// is a new conflict and may be re-asserted again.
pub fn reassert_again(
    previous: Option<&LinkNote>,
    servicenow_value: &str,
    snowbound_value: &str,
) -> bool {
    !previous.is_some_and(|note| {
        note.servicenow_value == servicenow_value && note.snowbound_value == snowbound_value
    })
}

/// Whether a note still says something once the field is in step again: a drift ends
/// when ServiceNow holds Snowbound's value, a re-assertion stays (it is what makes
/// [`reassert_again`] refuse a second push) until Snowbound's own value changes.
fn note_outlived(note: &LinkNote, ours: &str) -> bool {
    note.kind == NoteKind::Drift || note.snowbound_value != ours
}

/// Rule (who wins, `latest`): the later change wins. When Snowbound's value of the
/// field is already in ServiceNow (`snowbound_unsent` false), a value there other than the one
/// pushed was written after Snowbound's, whatever the clocks say: ServiceNow's change is
/// the later one. Otherwise both changed since the last push and the times decide:
/// `sys_updated_on` has one-second resolution, so Snowbound's time is cut to the second
/// too; a tie goes to Snowbound, which then says so on the link rather than silently
/// taking the change.
pub fn servicenow_wins(
    winner: Winner,
    servicenow_at: DateTime<Utc>,
    snowbound_at: DateTime<Utc>,
    snowbound_unsent: bool,
) -> bool {
    match winner {
        Winner::Servicenow => true,
        Winner::Snowbound => false,
        Winner::Latest => !snowbound_unsent || servicenow_at.timestamp() > snowbound_at.timestamp(),
    }
}

/// Snowbound's value of `field` is not what it last pushed: a change of Snowbound's
/// has not reached ServiceNow yet.
fn unsent(link: LinkSide<'_>, field: &str, ours: &str) -> bool {
    link.pushed.get(field).map(String::as_str) != Some(ours)
}

/// Whether a ServiceNow state ends the incident: the resolved mapping, Closed or Canceled.
pub fn is_resolved_state(state: &str, settings: &ServiceNowSettings) -> bool {
    state == settings.state_resolved || state == STATE_CLOSED || state == STATE_CANCELED
}

/// What one field comes to.
enum FieldOutcome {
    /// Echo, or ServiceNow's value already means what the incident is.
    InStep,
    Apply {
        actions: Vec<IncidentAction>,
        touched: Vec<String>,
    },
    Reassert(LinkNote),
    Drift(LinkNote),
}

/// The decision for one read of a linked record.
pub fn decide(
    record: &SeenRecord,
    link: LinkSide<'_>,
    incident: IncidentSide,
    rules: Rules<'_>,
) -> Decision {
    if already_applied(record.mod_count, link.applied_mod_count) {
        return Decision::Nothing(Quiet::AlreadyApplied);
    }
    if own_write(&record.updated_by, rules.own_user, link.reconcile_pending) {
        return Decision::Nothing(Quiet::OwnWrite);
    }
    let settings = rules.settings;
    let mut inbound = Inbound {
        mod_count: record.mod_count,
        by: record.updated_by.clone(),
        number: record.number.clone(),
        actions: Vec::new(),
        touched: Vec::new(),
        servicenow_holds: FieldMap::new(),
        notes: BTreeMap::new(),
    };
    let severity_field = settings.severity.primary_field.as_str();
    for (field, ours, outcome) in [
        (
            STATE_FIELD,
            settings.state_for(incident.status),
            state_outcome(record, link, incident, rules),
        ),
        (
            severity_field,
            settings.severity.primary_map.get(incident.severity),
            severity_outcome(record, link, incident, rules),
        ),
    ] {
        match outcome {
            FieldOutcome::InStep => {
                if link
                    .notes
                    .get(field)
                    .is_some_and(|n| note_outlived(n, ours))
                {
                    inbound.notes.insert(field.to_owned(), None);
                }
            }
            FieldOutcome::Apply { actions, touched } => {
                inbound.actions.extend(actions);
                inbound.touched.extend(touched);
                if link.notes.contains_key(field) {
                    inbound.notes.insert(field.to_owned(), None);
                }
            }
            FieldOutcome::Reassert(note) => {
                inbound
                    .servicenow_holds
                    .insert(field.to_owned(), note.servicenow_value.clone());
                inbound.notes.insert(field.to_owned(), Some(note));
            }
            FieldOutcome::Drift(note) => {
                // The same drift standing already is no news.
                let same = link.notes.get(field).is_some_and(|old| {
                    old.kind == NoteKind::Drift
                        && old.servicenow_value == note.servicenow_value
                        && old.snowbound_value == note.snowbound_value
                });
                if !same {
                    inbound.notes.insert(field.to_owned(), Some(note));
                }
            }
        }
    }
    if inbound.actions.is_empty() && inbound.servicenow_holds.is_empty() && inbound.notes.is_empty()
    {
        return Decision::Nothing(Quiet::Echo);
    }
    Decision::Apply(inbound)
}

fn note(
    record: &SeenRecord,
    field: &str,
    kind: NoteKind,
    snowbound_value: &str,
    reason: impl Into<String>,
) -> LinkNote {
    LinkNote {
        field: field.to_owned(),
        kind,
        servicenow_value: record.value(field).unwrap_or_default().to_owned(),
        snowbound_value: snowbound_value.to_owned(),
        by: record.updated_by.clone(),
        at: record.updated_on,
        reason: reason.into(),
    }
}

fn state_outcome(
    record: &SeenRecord,
    link: LinkSide<'_>,
    incident: IncidentSide,
    rules: Rules<'_>,
) -> FieldOutcome {
    if is_echo(STATE_FIELD, record, link.pushed) {
        return FieldOutcome::InStep;
    }
    let settings = rules.settings;
    let transitions = rules.transitions;
    let value = record.value(STATE_FIELD).unwrap_or_default();
    let ours = settings.state_for(incident.status);
    let acknowledged = settings.state_acknowledged.as_deref() == Some(value);
    // (actions, enabled, the name of the transition for a note)
    let (actions, enabled, name) = if is_resolved_state(value, settings) {
        if incident.status == IncidentStatus::Resolved {
            return FieldOutcome::InStep;
        }
        let comment = record
            .value(&settings.close_notes_field)
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| {
                crate::validate::cut(
                    crate::validate::replace_nul(c.to_owned()),
                    crate::validate::limits::COMMENT,
                )
            });
        (
            vec![IncidentAction::Resolve { comment }],
            transitions.resolve,
            "resolve",
        )
    } else if incident.status == IncidentStatus::Resolved {
        let mut actions = vec![IncidentAction::Reopen];
        if acknowledged && transitions.acknowledge {
            actions.push(IncidentAction::Acknowledge);
        }
        (actions, transitions.reopen, "reopen")
    } else if acknowledged && incident.status == IncidentStatus::Open {
        (
            vec![IncidentAction::Acknowledge],
            transitions.acknowledge,
            "acknowledge",
        )
    } else {
        // Another open state (In Progress without an acknowledged mapping, On Hold): the
        // incident is already what it means.
        return FieldOutcome::InStep;
    };
    if !enabled {
        return FieldOutcome::Drift(note(
            record,
            STATE_FIELD,
            NoteKind::Drift,
            ours,
            format!("the {name} transition is off for this source"),
        ));
    }
    if servicenow_wins(
        settings.who_wins.state,
        record.updated_on,
        incident.status_changed_at,
        unsent(link, STATE_FIELD, ours),
    ) {
        let mut touched = vec![STATE_FIELD.to_owned()];
        if matches!(actions[0], IncidentAction::Resolve { .. }) {
            touched.push(settings.close_code_field.clone());
            touched.push(settings.close_notes_field.clone());
        }
        return FieldOutcome::Apply { actions, touched };
    }
    contested(record, link, STATE_FIELD, ours, settings.who_wins.state)
}

fn contested(
    record: &SeenRecord,
    link: LinkSide<'_>,
    field: &str,
    ours: &str,
    winner: Winner,
) -> FieldOutcome {
    let value = record.value(field).unwrap_or_default();
    if !reassert_again(link.notes.get(field), value, ours) {
        return FieldOutcome::Drift(note(
            record,
            field,
            NoteKind::Drift,
            ours,
            "ServiceNow put its value back after Snowbound re-asserted; Snowbound stops until the field changes in Snowbound",
        ));
    }
    let reason = match winner {
        Winner::Snowbound => "Snowbound wins this field (who wins: snowbound)".to_owned(),
        _ => "Snowbound changed it later (who wins: latest)".to_owned(),
    };
    FieldOutcome::Reassert(note(record, field, NoteKind::Reasserted, ours, reason))
}

/// The severity a ServiceNow value of the primary field means: the map read backwards,
/// most severe first when two severities share a value.
pub fn severity_of(value: &str, settings: &ServiceNowSettings) -> Option<Severity> {
    Severity::ALL
        .iter()
        .copied()
        .find(|s| settings.severity.primary_map.get(*s) == value)
}

fn severity_outcome(
    record: &SeenRecord,
    link: LinkSide<'_>,
    incident: IncidentSide,
    rules: Rules<'_>,
) -> FieldOutcome {
    let settings = rules.settings;
    let field = settings.severity.primary_field.as_str();
    if is_echo(field, record, link.pushed) {
        return FieldOutcome::InStep;
    }
    let value = record.value(field).unwrap_or_default();
    let ours = settings.severity.primary_map.get(incident.severity);
    let Some(severity) = severity_of(value, settings) else {
        return FieldOutcome::Drift(note(
            record,
            field,
            NoteKind::Drift,
            ours,
            format!("`{value}` is not in the severity map"),
        ));
    };
    if severity == incident.severity {
        return FieldOutcome::InStep;
    }
    if !rules.transitions.severity {
        return FieldOutcome::Drift(note(
            record,
            field,
            NoteKind::Drift,
            ours,
            "the severity transition is off for this source",
        ));
    }
    if servicenow_wins(
        settings.who_wins.severity,
        record.updated_on,
        incident.severity_changed_at,
        unsent(link, field, ours),
    ) {
        let mut touched = vec![field.to_owned()];
        touched.extend(settings.severity.secondary_field.clone());
        return FieldOutcome::Apply {
            actions: vec![IncidentAction::SetSeverity { severity }],
            touched,
        };
    }
    contested(record, link, field, ours, settings.who_wins.severity)
}
