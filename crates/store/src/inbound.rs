//! The store's rows for inbound sync (issue #15): the poke queue, per-source polls and
//! per-link inbound state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use snowbound_core::inbound::LinkNote;
use snowbound_core::{FieldMap, Incident, TimelineEntry};
use uuid::Uuid;

use crate::types::Link;

/// A waiting poke handed to one worker: read `sys_id` of `table` through the source's
/// integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PokeLease {
    pub owner: String,
    pub source_id: Uuid,
    pub sys_id: String,
    pub table: String,
    /// The poke's revision when leased; a poke arriving meanwhile raises it, and the
    /// completion then keeps the poke for another read.
    pub rev: i64,
    /// How many pokes this row stands for.
    pub pokes: i64,
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PokeOutcome {
    /// The record was read (and whatever it meant is written): the poke is done, unless
    /// it was poked again meanwhile.
    Read,
    /// ServiceNow failed: try again at `at`. The poke stays, so it is never lost.
    Retry { at: DateTime<Utc>, error: String },
}

/// A source due for a poll, held by one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollLease {
    pub owner: String,
    pub source_id: Uuid,
    /// The newest `sys_updated_on` a previous poll saw; `None` before the first poll.
    pub watermark: Option<DateTime<Utc>>,
    pub interval_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollResult {
    pub at: DateTime<Utc>,
    /// The new watermark; it never moves backwards. `None` keeps the stored one.
    pub watermark: Option<DateTime<Utc>>,
    pub records_seen: i64,
    pub error: Option<String>,
    /// The poll stopped at its page limit: poll again now instead of after the interval.
    pub more: bool,
}

/// What a source's page shows about polling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PollState {
    pub source_id: Uuid,
    /// `None`: the source does not poll.
    pub interval_ms: Option<i64>,
    pub watermark: Option<DateTime<Utc>>,
    pub next_poll_at: DateTime<Utc>,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_records: Option<i64>,
    pub last_error: Option<String>,
    pub last_success_at: Option<DateTime<Utc>>,
}

/// A link found by its record, with its inbound state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundLink {
    pub link: Link,
    /// The highest `sys_mod_count` applied on this link.
    pub applied_mod_count: Option<i64>,
    /// Drift and who-wins notes standing on the link, by field.
    pub notes: BTreeMap<String, LinkNote>,
}

/// The incident change an inbound decision makes, written as `update_incident` does.
#[derive(Debug, Clone)]
pub struct InboundIncidentChange {
    pub incident: Incident,
    pub expected_updated_at: DateTime<Utc>,
    pub timeline: Vec<TimelineEntry>,
}

/// Everything one inbound decision writes, in one transaction, so the outbound engine
/// can never see the incident changed without `pushed` knowing it came from ServiceNow.
#[derive(Debug, Clone)]
pub struct InboundWrite {
    pub incident_id: Uuid,
    pub integration_id: Uuid,
    pub change: Option<InboundIncidentChange>,
    /// Recorded as applied; the stored one never decreases.
    pub mod_count: i64,
    /// Merged into the link's `pushed`.
    pub pushed: FieldMap,
    /// Set (`Some`) or cleared (`None`) by field.
    pub notes: BTreeMap<String, Option<LinkNote>>,
    /// Make the link due (a re-assertion waits to be sent).
    pub reconcile: bool,
    /// Park the link with this reason (the record is gone from ServiceNow); the
    /// incident stays as it is.
    pub park: Option<String>,
}

/// A ServiceNow-born incident, written in one transaction with its link, which adopts
/// the record instead of creating one: `pushed` holds everything outbound would send,
/// so the next reconcile sends nothing until the incident changes in Snowbound.
#[derive(Debug, Clone)]
pub struct AdoptRecord {
    pub incident: Incident,
    pub timeline: Vec<TimelineEntry>,
    pub integration_id: Uuid,
    pub sys_id: String,
    pub number: String,
    pub pushed: FieldMap,
    /// The record's `sys_mod_count` when read: applied already.
    pub mod_count: i64,
}

/// A note standing on one of an integration's links, for its settings page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandingNote {
    pub incident_id: Uuid,
    /// The incident's team: who may see the note.
    pub team_id: Uuid,
    /// The record's number, when it has one.
    pub number: Option<String>,
    pub note: LinkNote,
}
