//! The integration body of POST and PATCH: the seed's defaults for omitted settings,
//! strict keys, the JSON-merge of a PATCH onto the stored settings, and validation that
//! names the first bad field.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use snowbound_core::instance_url::{is_public, LOCAL_REFUSED};
use snowbound_core::integration_limits::{check_display_name, check_servicenow_lengths};
use snowbound_core::validate::{validate_servicenow, FieldError};
use snowbound_core::{
    ForwardingMode, Integration, ServiceNowAuth, ServiceNowSettings, SeverityMap, SeverityMapping,
};
use snowbound_store::StoreError;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::from_value;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationType {
    Servicenow,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationInput {
    pub display_name: String,
    pub root_team_id: Uuid,
    #[serde(default)]
    pub team_ids: Vec<Uuid>,
    #[serde(rename = "type")]
    pub kind: IntegrationType,
    #[serde(default)]
    pub forwarding: ForwardingMode,
    pub servicenow: ServiceNowInput,
}

fn defaults() -> ServiceNowSettings {
    ServiceNowSettings::with_defaults(String::new(), String::new(), String::new())
}

fn default_table() -> String {
    defaults().table
}
fn default_state_open() -> String {
    defaults().state_open
}
fn default_state_resolved() -> String {
    defaults().state_resolved
}
fn default_close_code_field() -> String {
    defaults().close_code_field
}
fn default_close_notes_field() -> String {
    defaults().close_notes_field
}
fn default_close_notes() -> String {
    defaults().close_notes_default
}
fn default_primary_field() -> String {
    SeverityMapping::default().primary_field
}
fn default_critical() -> String {
    SeverityMap::default().critical
}
fn default_warning() -> String {
    SeverityMap::default().warning
}
fn default_minor() -> String {
    SeverityMap::default().minor
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowInput {
    pub instance_url: String,
    pub username: String,
    /// Write-only: never serialized, so it cannot leak into an answer or a merge base.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    #[serde(default = "default_table")]
    pub table: String,
    #[serde(default = "default_state_open")]
    pub state_open: String,
    #[serde(default)]
    pub state_acknowledged: Option<String>,
    #[serde(default = "default_state_resolved")]
    pub state_resolved: String,
    #[serde(default = "default_close_code_field")]
    pub close_code_field: String,
    #[serde(default = "default_close_notes_field")]
    pub close_notes_field: String,
    pub close_code: String,
    #[serde(default = "default_close_notes")]
    pub close_notes_default: String,
    #[serde(default)]
    pub severity: SeverityInput,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityInput {
    #[serde(default = "default_primary_field")]
    pub primary_field: String,
    #[serde(default)]
    pub primary_map: SeverityMapInput,
    #[serde(default)]
    pub secondary_field: Option<String>,
    #[serde(default)]
    pub secondary_map: Option<SeverityMapInput>,
}

impl Default for SeverityInput {
    fn default() -> Self {
        SeverityInput {
            primary_field: default_primary_field(),
            primary_map: SeverityMapInput::default(),
            secondary_field: None,
            secondary_map: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityMapInput {
    #[serde(default = "default_critical")]
    pub critical: String,
    #[serde(default = "default_warning")]
    pub warning: String,
    #[serde(default = "default_minor")]
    pub minor: String,
}

impl Default for SeverityMapInput {
    fn default() -> Self {
        SeverityMap::default().into()
    }
}

impl From<SeverityMap> for SeverityMapInput {
    fn from(map: SeverityMap) -> Self {
        SeverityMapInput {
            critical: map.critical,
            warning: map.warning,
            minor: map.minor,
        }
    }
}

impl From<SeverityMapInput> for SeverityMap {
    fn from(map: SeverityMapInput) -> Self {
        SeverityMap {
            critical: map.critical.trim().to_owned(),
            warning: map.warning.trim().to_owned(),
            minor: map.minor.trim().to_owned(),
        }
    }
}

impl From<&Integration> for IntegrationInput {
    fn from(integration: &Integration) -> Self {
        let s = integration.servicenow.clone();
        IntegrationInput {
            display_name: integration.display_name.clone(),
            root_team_id: integration.root_team_id,
            team_ids: integration.team_ids.clone(),
            kind: IntegrationType::Servicenow,
            forwarding: integration.forwarding,
            servicenow: ServiceNowInput {
                instance_url: s.instance_url,
                username: s.auth.username().unwrap_or_default().to_owned(),
                password: None,
                table: s.table,
                state_open: s.state_open,
                state_acknowledged: s.state_acknowledged,
                state_resolved: s.state_resolved,
                close_code_field: s.close_code_field,
                close_notes_field: s.close_notes_field,
                close_code: s.close_code,
                close_notes_default: s.close_notes_default,
                severity: SeverityInput {
                    primary_field: s.severity.primary_field,
                    primary_map: s.severity.primary_map.into(),
                    secondary_field: s.severity.secondary_field,
                    secondary_map: s.severity.secondary_map.map(Into::into),
                },
            },
        }
    }
}

impl ServiceNowInput {
    /// Surrounding whitespace in a pasted value is never meant: ServiceNow would store
    /// `" 6"` as an unknown choice.
    pub fn to_settings(&self) -> ServiceNowSettings {
        let t = |s: &String| s.trim().to_owned();
        ServiceNowSettings {
            instance_url: t(&self.instance_url),
            // Until the API takes `servicenow.auth`, the top-level username means Basic.
            auth: ServiceNowAuth::Basic {
                username: t(&self.username),
            },
            table: t(&self.table),
            state_open: t(&self.state_open),
            state_acknowledged: self.state_acknowledged.as_ref().map(t),
            state_resolved: t(&self.state_resolved),
            close_code_field: t(&self.close_code_field),
            close_notes_field: t(&self.close_notes_field),
            close_code: t(&self.close_code),
            // Free text sent as close notes: kept as written.
            close_notes_default: self.close_notes_default.clone(),
            severity: SeverityMapping {
                primary_field: t(&self.severity.primary_field),
                primary_map: self.severity.primary_map.clone().into(),
                secondary_field: self.severity.secondary_field.as_ref().map(t),
                secondary_map: self.severity.secondary_map.clone().map(Into::into),
            },
        }
    }
}

/// A checked integration body, ready for the store.
pub struct Checked {
    pub display_name: String,
    pub root_team_id: Uuid,
    pub team_ids: Vec<Uuid>,
    pub forwarding: ForwardingMode,
    pub servicenow: ServiceNowSettings,
    pub password: Option<SecretString>,
}

/// Validates everything, reporting every bad field (the first leads the error).
/// `current` is the stored integration for a PATCH (`None` on create).
/// A team token may only add its own teams; other teams are reported as unknown. Teams
/// already on the integration are not checked again: an admin may have shared it with a
/// team its root team cannot see.
pub async fn check(
    state: &AppState,
    caller: &Caller,
    input: IntegrationInput,
    current: Option<&Integration>,
) -> ApiResult<Checked> {
    let mut errors = Vec::new();
    let display_name = input.display_name.trim().to_owned();
    if display_name.is_empty() {
        errors.push(FieldError::new("display_name", "is required"));
    }
    errors.extend(check_display_name(&display_name));
    let unchanged_root = current.is_some_and(|c| c.root_team_id == input.root_team_id);
    if !unchanged_root && !team_exists(state, caller, input.root_team_id).await? {
        errors.push(FieldError::new("root_team_id", "no such team"));
    }
    let already_shared = |team: &Uuid| current.is_some_and(|c| c.all_team_ids().contains(team));
    let mut team_ids = Vec::new();
    for team in input.team_ids {
        if team == input.root_team_id || team_ids.contains(&team) {
            continue;
        }
        if !already_shared(&team) && !team_exists(state, caller, team).await? {
            errors.push(FieldError::new("team_ids", format!("no such team {team}")));
        }
        team_ids.push(team);
    }
    let servicenow = input.servicenow.to_settings();
    let password = match input.servicenow.password.as_deref() {
        Some("") => {
            errors.push(FieldError::new("servicenow.password", "must not be empty"));
            None
        }
        Some(p) => Some(SecretString::from(p.to_owned())),
        None => match current {
            None => {
                errors.push(FieldError::new("servicenow.password", "is required"));
                None
            }
            // The stored password goes only where, and as whom, it was entered.
            Some(current)
                if current.servicenow.instance_url != servicenow.instance_url
                    || current.servicenow.auth != servicenow.auth =>
            {
                errors.push(FieldError::new(
                    "servicenow.password",
                    "is required when the instance URL or username changes: the stored \
                     password is only sent to the instance and user it was entered for",
                ));
                None
            }
            Some(_) => None,
        },
    };
    let policy = state.servicenow.instance_policy();
    let url_errors_before = errors.len();
    // The input names the user at the top level, so its errors do too.
    errors.extend(
        validate_servicenow(&servicenow, policy)
            .into_iter()
            .map(|mut e| {
                if e.field == "servicenow.auth.username" {
                    e.field = "servicenow.username".into();
                }
                e
            }),
    );
    errors.extend(check_servicenow_lengths(&servicenow));
    let url_refused = errors[url_errors_before..]
        .iter()
        .any(|e| e.field == "servicenow.instance_url");
    if !url_refused && !policy.allow_local && resolves_locally(&servicenow.instance_url).await {
        errors.push(FieldError::new("servicenow.instance_url", LOCAL_REFUSED));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    Ok(Checked {
        display_name,
        root_team_id: input.root_team_id,
        team_ids,
        forwarding: input.forwarding,
        servicenow,
        password,
    })
}

/// Whether the instance's name resolves to a local address now. The client checks again
/// at every connect; this names the field while the user is still on the form. A name that
/// does not resolve (yet) is left to that check.
async fn resolves_locally(instance_url: &str) -> bool {
    const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);
    let Ok(url) = url::Url::parse(instance_url.trim()) else {
        return false;
    };
    let Some(url::Host::Domain(name)) = url.host() else {
        return false;
    };
    let target = (name.to_owned(), url.port_or_known_default().unwrap_or(443));
    match tokio::time::timeout(LOOKUP_TIMEOUT, tokio::net::lookup_host(target)).await {
        Ok(Ok(mut addrs)) => addrs.any(|addr| !is_public(addr.ip())),
        _ => false,
    }
}

async fn team_exists(state: &AppState, caller: &Caller, team: Uuid) -> ApiResult<bool> {
    if !caller.sees_team(team) {
        return Ok(false);
    }
    match state.store.get_team(team).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The stored integration with `patch` merged in (RFC 7386 JSON merge patch: objects
/// merge key by key, `null` removes), plus the new password if one was sent.
pub fn merge_patch(current: &Integration, mut patch: Value) -> ApiResult<IntegrationInput> {
    if !patch.is_object() {
        return Err(ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "a PATCH body must be a JSON object",
        ));
    }
    let mut password = None;
    if let Some(Value::Object(servicenow)) = patch.get_mut("servicenow") {
        match servicenow.remove("password") {
            None | Some(Value::Null) => {}
            Some(Value::String(p)) => password = Some(p),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "servicenow.password",
                    "must be a string",
                ))
            }
        }
        // Turning the secondary field off drops its map too, unless a map was sent.
        if let Some(Value::Object(severity)) = servicenow.get_mut("severity") {
            if severity.get("secondary_field") == Some(&Value::Null)
                && !severity.contains_key("secondary_map")
            {
                severity.insert("secondary_map".into(), Value::Null);
            }
        }
    }
    let mut merged =
        serde_json::to_value(IntegrationInput::from(current)).map_err(|_| ApiError::internal())?;
    merge(&mut merged, patch);
    let mut input: IntegrationInput = from_value(merged)?;
    input.servicenow.password = password;
    Ok(input)
}

fn merge(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(patch) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            let Value::Object(target) = target else {
                return;
            };
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    merge(target.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        other => *target = other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn stored() -> Integration {
        let mut servicenow = ServiceNowSettings::with_defaults(
            "https://acme.service-now.com".into(),
            "snowbound".into(),
            "Solution provided".into(),
        );
        servicenow.severity.secondary_field = Some("impact".into());
        servicenow.severity.secondary_map = Some(SeverityMap::default());
        Integration {
            id: Uuid::now_v7(),
            display_name: "SN".into(),
            root_team_id: Uuid::now_v7(),
            team_ids: vec![],
            forwarding: ForwardingMode::Always,
            servicenow,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn patch_changes_only_the_keys_sent() {
        let current = stored();
        let patch = json!({"servicenow": {"severity": {"primary_map": {"minor": "4"}}}});
        let input = merge_patch(&current, patch).unwrap();
        let s = input.servicenow.to_settings();
        assert_eq!(s.severity.primary_map.minor, "4");
        assert_eq!(s.severity.primary_map.critical, "1");
        assert_eq!(s.severity.secondary_field.as_deref(), Some("impact"));
        assert_eq!(s.close_code, "Solution provided");
        assert_eq!(input.forwarding, ForwardingMode::Always);
        assert_eq!(input.servicenow.password, None);
    }

    #[test]
    fn null_secondary_field_turns_secondary_off() {
        let patch = json!({"servicenow": {"severity": {"secondary_field": null},
                                          "password": "new"}});
        let input = merge_patch(&stored(), patch).unwrap();
        let s = input.servicenow.to_settings();
        assert_eq!(s.severity.secondary_field, None);
        assert_eq!(s.severity.secondary_map, None);
        assert!(validate_servicenow(&s, Default::default()).is_empty());
        assert_eq!(input.servicenow.password.as_deref(), Some("new"));
    }

    #[test]
    fn unknown_keys_in_a_patch_are_named() {
        let err = merge_patch(&stored(), json!({"servicenow": {"close_cod": "x"}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("servicenow.close_cod"));
    }

    #[test]
    fn null_on_a_required_key_is_named() {
        let err = merge_patch(&stored(), json!({"servicenow": {"close_code": null}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("servicenow.close_code"));
    }
}
