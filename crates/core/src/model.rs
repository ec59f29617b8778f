//! Domain types shared by the store, the engine and the HTTP layer.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::ServiceNowAuth;
pub use crate::inbound::settings::WhoWins;

/// Ids are UUIDv7: time-ordered, so primary-key indexes stay append-mostly.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        kind: stringify!($name),
                        value: s.to_owned(),
                        allowed: &[$($text),+],
                    }),
                }
            }
        }
    };
}

/// A string that is not one of an enum's names; the message lists the allowed ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`; expected one of: {}", allowed.join(", "))]
pub struct UnknownValue {
    pub kind: &'static str,
    pub value: String,
    pub allowed: &'static [&'static str],
}

string_enum!(
    /// Severity of an incident, most severe first.
    Severity { Critical => "critical", Warning => "warning", Minor => "minor" }
);

string_enum!(
    IncidentStatus { Open => "open", Acknowledged => "acknowledged", Resolved => "resolved" }
);

string_enum!(
    /// When an integration gets a link to an incident and whether it follows changes.
    ForwardingMode {
        AlwaysAfterForwarding => "always_after_forwarding",
        Always => "always",
        OnlyOnForwarding => "only_on_forwarding",
    }
);

// The enum comes from `string_enum!`, which cannot carry a `#[default]` variant.
#[allow(clippy::derivable_impls)]
impl Default for ForwardingMode {
    fn default() -> Self {
        ForwardingMode::AlwaysAfterForwarding
    }
}

impl ForwardingMode {
    /// `only_on_forwarding` freezes what was forwarded; the others follow every change.
    pub fn follows_updates(self) -> bool {
        !matches!(self, ForwardingMode::OnlyOnForwarding)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Team {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

pub type Attributes = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Incident {
    pub id: Uuid,
    pub team_id: Uuid,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub status: IncidentStatus,
    #[schema(value_type = BTreeMap<String, String>)]
    pub attributes: Attributes,
    /// The comment given with the latest resolve; cleared on reopen so a later
    /// resolve without a comment falls back to the configured close notes.
    pub resolve_comment: Option<String>,
    /// The alert source that opened it; `None` for incidents opened by people, the API
    /// or ServiceNow. Routing rules match on it (`when.source_ids`).
    #[serde(default)]
    pub source_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Incident {
    pub fn snapshot(&self) -> IncidentSnapshot {
        IncidentSnapshot {
            id: self.id,
            title: self.title.clone(),
            description: self.description.clone(),
            severity: self.severity,
            status: self.status,
            resolve_comment: self.resolve_comment.clone(),
        }
    }
}

/// The part of an incident that ServiceNow sees. `only_on_forwarding` links store one
/// of these, frozen at the moment of the forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentSnapshot {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub status: IncidentStatus,
    pub resolve_comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub at: DateTime<Utc>,
    /// Who did it: a user, a token's name, a source, a routing rule or the sync engine.
    pub actor: String,
    pub kind: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeverityMap {
    pub critical: String,
    pub warning: String,
    pub minor: String,
}

impl SeverityMap {
    pub fn get(&self, severity: Severity) -> &str {
        match severity {
            Severity::Critical => &self.critical,
            Severity::Warning => &self.warning,
            Severity::Minor => &self.minor,
        }
    }
}

impl Default for SeverityMap {
    /// The seed's default for `urgency`: 1 High, 2 Medium, 3 Low.
    fn default() -> Self {
        SeverityMap {
            critical: "1".into(),
            warning: "2".into(),
            minor: "3".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeverityMapping {
    pub primary_field: String,
    pub primary_map: SeverityMap,
    /// Off when `None`. With `urgency` + `impact` ServiceNow derives priority itself.
    pub secondary_field: Option<String>,
    pub secondary_map: Option<SeverityMap>,
}

impl Default for SeverityMapping {
    fn default() -> Self {
        SeverityMapping {
            primary_field: "urgency".into(),
            primary_map: SeverityMap::default(),
            secondary_field: None,
            secondary_map: None,
        }
    }
}

/// ServiceNow settings of an outbound integration, without the secrets (which the
/// store keeps encrypted and hands out only as [`crate::Credentials`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "SettingsWire", into = "SettingsWire")]
pub struct ServiceNowSettings {
    pub instance_url: String,
    pub auth: ServiceNowAuth,
    pub table: String,
    pub state_open: String,
    /// When unset, acknowledged counts as open.
    pub state_acknowledged: Option<String>,
    pub state_resolved: String,
    pub close_code_field: String,
    pub close_notes_field: String,
    pub close_code: String,
    pub close_notes_default: String,
    pub severity: SeverityMapping,
    /// Which system wins a conflict on state and on severity. Settings
    /// stored before it have none and get `latest` for both.
    #[serde(default)]
    pub who_wins: WhoWins,
    /// Field mappings, closed-record handling and which updates are sent.
    /// Flattened so the API keeps `servicenow.fields`, `servicenow.updates`, …; every
    /// part has a default, so settings stored before it read as today's behaviour.
    #[serde(flatten)]
    pub mapping: crate::mapping::MappingSettings,
}

/// The stored and answered shape. Settings written before `auth` existed carry a
/// top-level `username` and mean Basic; Basic settings still carry it, so readers of
/// the old shape keep finding the user.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
struct SettingsWire {
    instance_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    auth: Option<ServiceNowAuth>,
    table: String,
    state_open: String,
    state_acknowledged: Option<String>,
    state_resolved: String,
    close_code_field: String,
    close_notes_field: String,
    close_code: String,
    close_notes_default: String,
    severity: SeverityMapping,
    #[serde(default)]
    who_wins: WhoWins,
    #[serde(flatten)]
    mapping: crate::mapping::MappingSettings,
}

impl TryFrom<SettingsWire> for ServiceNowSettings {
    type Error = String;

    fn try_from(w: SettingsWire) -> Result<Self, String> {
        let auth = match (w.auth, w.username) {
            (Some(auth), _) => auth,
            (None, Some(username)) => ServiceNowAuth::Basic { username },
            (None, None) => return Err("ServiceNow settings need `auth` (or `username`)".into()),
        };
        Ok(ServiceNowSettings {
            instance_url: w.instance_url,
            auth,
            table: w.table,
            state_open: w.state_open,
            state_acknowledged: w.state_acknowledged,
            state_resolved: w.state_resolved,
            close_code_field: w.close_code_field,
            close_notes_field: w.close_notes_field,
            close_code: w.close_code,
            close_notes_default: w.close_notes_default,
            severity: w.severity,
            who_wins: w.who_wins,
            mapping: w.mapping,
        })
    }
}

impl From<ServiceNowSettings> for SettingsWire {
    fn from(s: ServiceNowSettings) -> Self {
        let username = match &s.auth {
            ServiceNowAuth::Basic { username } => Some(username.clone()),
            _ => None,
        };
        SettingsWire {
            instance_url: s.instance_url,
            username,
            auth: Some(s.auth),
            table: s.table,
            state_open: s.state_open,
            state_acknowledged: s.state_acknowledged,
            state_resolved: s.state_resolved,
            close_code_field: s.close_code_field,
            close_notes_field: s.close_notes_field,
            close_code: s.close_code,
            close_notes_default: s.close_notes_default,
            severity: s.severity,
            who_wins: s.who_wins,
            mapping: s.mapping,
        }
    }
}

// The API answers and takes the wire shape, so the OpenAPI schema is the wire's.
impl utoipa::PartialSchema for ServiceNowSettings {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <SettingsWire as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for ServiceNowSettings {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <SettingsWire as utoipa::ToSchema>::schemas(schemas)
    }
}

pub const DEFAULT_CLOSE_NOTES: &str = "Resolved from Snowbound";

impl ServiceNowSettings {
    /// The seed's defaults for everything but the instance, the (Basic) user and the
    /// close code, which an admin must choose.
    pub fn with_defaults(instance_url: String, username: String, close_code: String) -> Self {
        ServiceNowSettings {
            instance_url,
            auth: ServiceNowAuth::Basic { username },
            table: "incident".into(),
            state_open: "1".into(),
            state_acknowledged: None,
            state_resolved: "6".into(),
            close_code_field: "close_code".into(),
            close_notes_field: "close_notes".into(),
            close_code,
            close_notes_default: DEFAULT_CLOSE_NOTES.into(),
            severity: SeverityMapping::default(),
            who_wins: WhoWins::default(),
            mapping: crate::mapping::MappingSettings::default(),
        }
    }

    pub fn state_for(&self, status: IncidentStatus) -> &str {
        match status {
            IncidentStatus::Open => &self.state_open,
            IncidentStatus::Acknowledged => self
                .state_acknowledged
                .as_deref()
                .unwrap_or(&self.state_open),
            IncidentStatus::Resolved => &self.state_resolved,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Integration {
    pub id: Uuid,
    pub display_name: String,
    pub root_team_id: Uuid,
    /// Further teams beyond the root team.
    pub team_ids: Vec<Uuid>,
    pub forwarding: ForwardingMode,
    pub servicenow: ServiceNowSettings,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Integration {
    pub fn serves_team(&self, team_id: Uuid) -> bool {
        self.root_team_id == team_id || self.team_ids.contains(&team_id)
    }

    pub fn all_team_ids(&self) -> Vec<Uuid> {
        let mut ids = vec![self.root_team_id];
        ids.extend(
            self.team_ids
                .iter()
                .copied()
                .filter(|t| *t != self.root_team_id),
        );
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The settings column as databases hold it since the first release.
    fn stored_before_auth() -> serde_json::Value {
        json!({
            "instance_url": "https://acme.service-now.com",
            "username": "snowbound",
            "table": "incident",
            "state_open": "1",
            "state_acknowledged": null,
            "state_resolved": "6",
            "close_code_field": "close_code",
            "close_notes_field": "close_notes",
            "close_code": "Solution provided",
            "close_notes_default": "Resolved from Snowbound",
            "severity": {
                "primary_field": "urgency",
                "primary_map": {"critical": "1", "warning": "2", "minor": "3"},
                "secondary_field": null,
                "secondary_map": null
            }
        })
    }

    #[test]
    fn settings_stored_before_auth_mean_basic() {
        let settings: ServiceNowSettings = serde_json::from_value(stored_before_auth()).unwrap();
        assert_eq!(
            settings.auth,
            ServiceNowAuth::Basic {
                username: "snowbound".into()
            }
        );
        assert_eq!(
            settings,
            ServiceNowSettings::with_defaults(
                "https://acme.service-now.com".into(),
                "snowbound".into(),
                "Solution provided".into()
            )
        );
        // Written back, the old shape is still there beside `auth`.
        let written = serde_json::to_value(&settings).unwrap();
        assert_eq!(written["username"], "snowbound");
        assert_eq!(
            written["auth"],
            json!({"type": "basic", "username": "snowbound"})
        );
    }

    #[test]
    fn auth_wins_and_other_types_carry_no_top_level_username() {
        let mut wire = stored_before_auth();
        wire["auth"] = json!({"type": "oauth_client_credentials", "client_id": "abc"});
        let settings: ServiceNowSettings = serde_json::from_value(wire).unwrap();
        assert_eq!(
            settings.auth,
            ServiceNowAuth::OauthClientCredentials {
                client_id: "abc".into()
            }
        );
        let written = serde_json::to_value(&settings).unwrap();
        assert!(written.get("username").is_none(), "{written}");
        let back: ServiceNowSettings = serde_json::from_value(written).unwrap();
        assert_eq!(back, settings);

        let mut neither = stored_before_auth();
        neither.as_object_mut().unwrap().remove("username");
        assert!(serde_json::from_value::<ServiceNowSettings>(neither).is_err());
    }
}
