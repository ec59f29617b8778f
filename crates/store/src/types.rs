//! Rows of the store that are not domain types of their own.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use snowbound_core::{
    FieldMap, Incident, IncidentSnapshot, IncidentStatus, Integration, Severity, TimelineEntry,
};
use uuid::Uuid;

/// A team-scoped bearer token. Only its SHA-256 is stored; the token is shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiToken {
    pub id: Uuid,
    pub name: String,
    #[serde(skip)]
    pub hash: String,
    pub team_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// An integration with its health as the engine last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IntegrationRecord {
    #[serde(flatten)]
    pub integration: Integration,
    /// Which secrets are stored (never the secrets themselves).
    pub password_set: bool,
    pub client_secret_set: bool,
    pub api_key_set: bool,
    pub health: IntegrationHealth,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default, utoipa::ToSchema)]
pub struct IntegrationHealth {
    /// Set while ServiceNow refuses the credentials; cleared by a settings change.
    pub failing: Option<String>,
    pub paused_until: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub failing_links: i64,
}

/// One incident write of a group commit ([`crate::Store::write_incidents`]).
#[derive(Debug, Clone)]
pub enum IncidentWrite {
    /// A new incident with its first timeline entries and links; with `dedup_key`
    /// (source, key) it is bound to the key, refused with `KeyHeld` when an unresolved
    /// incident holds the key already.
    Create {
        incident: Incident,
        timeline: Vec<TimelineEntry>,
        links: Vec<NewLink>,
        dedup_key: Option<(Uuid, String)>,
        routing: RoutingWrite,
    },
    /// As [`crate::Store::update_incident`]: refused with `Stale` when the stored
    /// `updated_at` is no longer `expected_updated_at`.
    Update {
        incident: Incident,
        expected_updated_at: DateTime<Utc>,
        timeline: Vec<TimelineEntry>,
        new_links: Vec<NewLink>,
        routing: RoutingWrite,
    },
}

/// What routing rules add to an incident write, in its transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutingWrite {
    /// Routing history rows of the incident (their `incident_id` is the write's).
    pub firings: Vec<RuleFiring>,
    /// The write's new links wait for this rule's delay.
    pub hold: Option<LinkHold>,
    /// The incident is resolved at this time: its links still held then, with no record
    /// and no lease, are deleted unsent, with a timeline entry and a history row each.
    pub drop_held_at: Option<DateTime<Utc>>,
}

/// A delay a rule puts on new links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkHold {
    pub until: DateTime<Utc>,
    pub rule_id: Uuid,
    pub rule_name: String,
}

/// One row of the routing history: a rule fired for an incident, discarded an alert
/// (`incident_id` is `None`), or a held link was not sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RuleFiring {
    pub team_id: Uuid,
    pub rule_id: Uuid,
    pub rule_name: String,
    pub incident_id: Option<Uuid>,
    /// `fired`, `discarded` or `not_sent`.
    pub kind: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// A link to create (or a forward to record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLink {
    pub incident_id: Uuid,
    pub integration_id: Uuid,
    /// Frozen state for `only_on_forwarding`; `None` follows the live incident.
    pub snapshot: Option<IncidentSnapshot>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// A change waits to be sent.
    Pending,
    /// ServiceNow holds the latest change.
    Synced,
    /// The last attempt failed transiently; the next one is scheduled.
    Retrying,
    /// ServiceNow rejected the request; waits for a settings change or a retry.
    Parked,
}

impl LinkState {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Pending => "pending",
            LinkState::Synced => "synced",
            LinkState::Retrying => "retrying",
            LinkState::Parked => "parked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => LinkState::Pending,
            "synced" => LinkState::Synced,
            "retrying" => LinkState::Retrying,
            "parked" => LinkState::Parked,
            _ => return None,
        })
    }
}

/// One (incident, integration) pair that must be kept in step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub incident_id: Uuid,
    pub integration_id: Uuid,
    pub sys_id: Option<String>,
    pub number: Option<String>,
    /// The ServiceNow state we last wrote.
    pub servicenow_state: Option<String>,
    /// What ServiceNow holds as far as we know: the union of everything we sent.
    pub pushed: FieldMap,
    pub snapshot: Option<IncidentSnapshot>,
    pub rev: i64,
    pub synced_rev: i64,
    pub state: LinkState,
    pub attempts: i64,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// A create may have reached ServiceNow without us seeing the answer.
    pub create_unsure: bool,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A link handed to one worker, with what it needs to reconcile.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    /// The link's revision when leased: what a success marks as synced.
    pub rev: i64,
    pub link: Link,
    pub incident: Incident,
}

#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    /// `None` = every team (admin).
    pub team_ids: Option<Vec<Uuid>>,
    pub status: Option<IncidentStatus>,
    pub severity: Option<Severity>,
    /// Each one a case-insensitive substring of the title (`%` and `_` match themselves).
    pub title_contains: Vec<String>,
    /// Each `(key, value)` an attribute the incident holds exactly.
    pub attributes: Vec<(String, String)>,
    /// Keyset pagination: only incidents after this one in the list's order (newest
    /// first, ties on `created_at` broken by id, descending).
    pub before: Option<IncidentCursor>,
    pub limit: Option<u32>,
}

/// Where a page of the incidents list ends: the last incident's `created_at` and id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiCallRecord {
    pub integration_id: Uuid,
    pub incident_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    pub method: String,
    pub url: String,
    pub status: Option<u16>,
    pub duration_ms: u64,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub object_type: Option<String>,
    pub object_id: Option<String>,
    /// Only events older than this id (paging back).
    pub before: Option<i64>,
    /// At most this many (100 when unset).
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct ApiCallFilter {
    pub integration_id: Option<Uuid>,
    pub incident_id: Option<Uuid>,
    /// 2, 4 or 5 for 2xx/4xx/5xx; 0 for calls that got no answer.
    pub status_class: Option<u16>,
    pub limit: Option<u32>,
    /// `Some(teams)`: only calls about an incident of one of these teams (what a team
    /// token may see), plus calls about no incident (Test Connection, choice lists) when
    /// `include_without_incident`. `None`: no restriction.
    pub visible_team_ids: Option<Vec<Uuid>>,
    pub include_without_incident: bool,
}

/// How many rows are in each state, for gauges computed when `/metrics` is scraped.
/// States with no rows are absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub incidents: Vec<(IncidentStatus, i64)>,
    pub links: Vec<LinkCount>,
}

/// The links of one integration in one stored state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkCount {
    pub integration_id: Uuid,
    pub state: LinkState,
    pub count: i64,
}

/// Payloads a `json` source keeps, newest first: enough to build a mapping on, few
/// enough that a chatty sender costs nothing.
pub const PAYLOADS_KEPT: usize = 20;
/// Longest payload kept whole, in bytes; a longer one is kept cut (`truncated`).
pub const PAYLOAD_MAX_BYTES: usize = 64 * 1024;

/// A body a `json` source received, as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptPayload {
    pub id: Uuid,
    pub received_at: DateTime<Utc>,
    pub body: String,
    /// Cut to [`PAYLOAD_MAX_BYTES`].
    pub truncated: bool,
}
