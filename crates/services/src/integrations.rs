//! Outbound integrations: the command of a create or change ([`IntegrationInput`], with
//! the seed's defaults for omitted settings), its validation naming every bad field, and
//! the service that stores it. Credentials are handled in one place
//! ([`crate::integration_auth`]): a change of instance URL, auth type, client or user
//! needs the secret again, since a stored one goes only where, and as whom, it was entered.

use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use snowbound_core::inbound::WhoWins;
use snowbound_core::instance_url::{is_public, InstancePolicy, LOCAL_REFUSED};
use snowbound_core::integration_limits::{check_display_name, check_servicenow_lengths};
use snowbound_core::mapping::{FieldMapping, MappingSettings, OnClosed, Updates};
use snowbound_core::validate::{validate_servicenow, FieldError};
use snowbound_core::{
    new_id, ForwardingMode, Integration, ServiceNowAuth, ServiceNowSettings, SeverityMap,
    SeverityMapping,
};
use snowbound_store::{IntegrationRecord, Store};
use uuid::Uuid;

use crate::audit::{snapshot, AuditService};
use crate::caller::Caller;
use crate::choice_cache::ChoiceCache;
use crate::error::{ServiceError, ServiceResult};
pub use crate::integration_auth::AuthInput;
use crate::integration_auth::{checked_credentials, uses_top_level_form, write_only};
use crate::lookups::{Changed, Lookups};
use crate::scope::{gone_is_fine, named, team_exists, visible};
use crate::waker::EngineWaker;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationType {
    Servicenow,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
fn default_state_closed() -> String {
    MappingSettings::default().state_closed
}
fn default_work_notes_field() -> String {
    MappingSettings::default().work_notes_field
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

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowInput {
    pub instance_url: String,
    /// The form before `auth` existed, meaning Basic. A merge base never carries it (it
    /// carries `auth`), so it is only ever what a caller sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Write-only: never serialized, so it cannot leak into an answer or a merge base.
    #[serde(default, skip_serializing_if = "write_only")]
    #[schema(write_only)]
    pub password: Option<String>,
    /// `servicenow.auth`; its secrets are write-only like `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthInput>,
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
    /// Field mappings (issue #17). Explicit rather than a flattened `MappingSettings`:
    /// serde's `deny_unknown_fields` does not work through `flatten`.
    #[serde(default)]
    pub fields: Vec<FieldMapping>,
    #[serde(default)]
    pub updates: Updates,
    #[serde(default = "default_state_closed")]
    pub state_closed: String,
    #[serde(default)]
    pub on_closed: OnClosed,
    #[serde(default = "default_work_notes_field")]
    pub work_notes_field: String,
    /// Which system wins a conflicting change of state and of severity (issue #15).
    #[serde(default)]
    pub who_wins: WhoWins,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
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
        IntegrationInput {
            display_name: integration.display_name.clone(),
            root_team_id: integration.root_team_id,
            team_ids: integration.team_ids.clone(),
            kind: IntegrationType::Servicenow,
            forwarding: integration.forwarding,
            servicenow: integration.servicenow.clone().into(),
        }
    }
}

/// The settings as a command that keeps them (and the stored secrets).
impl From<ServiceNowSettings> for ServiceNowInput {
    fn from(s: ServiceNowSettings) -> Self {
        ServiceNowInput {
            instance_url: s.instance_url,
            username: None,
            password: None,
            auth: Some(AuthInput::from(&s.auth)),
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
            fields: s.mapping.fields,
            updates: s.mapping.updates,
            state_closed: s.mapping.state_closed,
            on_closed: s.mapping.on_closed,
            work_notes_field: s.mapping.work_notes_field,
            who_wins: s.who_wins,
        }
    }
}

impl ServiceNowInput {
    /// Names trimmed like the other settings; templates are kept as written, since their
    /// whitespace is what gets sent.
    fn mapping_settings(&self) -> MappingSettings {
        let t = |s: &String| s.trim().to_owned();
        MappingSettings {
            fields: self
                .fields
                .iter()
                .map(|m| FieldMapping {
                    field: t(&m.field),
                    ..m.clone()
                })
                .collect(),
            updates: self.updates.clone(),
            state_closed: t(&self.state_closed),
            on_closed: self.on_closed,
            work_notes_field: t(&self.work_notes_field),
        }
    }

    /// `auth` without its secrets; the top-level username alone means Basic.
    pub fn auth_settings(&self) -> ServiceNowAuth {
        match (&self.auth, &self.username) {
            (Some(auth), _) => auth.settings(),
            (None, username) => ServiceNowAuth::Basic {
                username: username.clone().unwrap_or_default(),
            },
        }
        .trimmed()
    }

    /// Surrounding whitespace in a pasted value is never meant: ServiceNow would store
    /// `" 6"` as an unknown choice.
    pub fn to_settings(&self) -> ServiceNowSettings {
        let t = |s: &String| s.trim().to_owned();
        ServiceNowSettings {
            instance_url: t(&self.instance_url),
            auth: self.auth_settings(),
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
            who_wins: self.who_wins,
            mapping: self.mapping_settings(),
        }
    }
}

/// A checked integration command, ready for the store.
struct Checked {
    display_name: String,
    root_team_id: Uuid,
    team_ids: Vec<Uuid>,
    forwarding: ForwardingMode,
    servicenow: ServiceNowSettings,
    credentials: snowbound_core::Credentials,
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

/// The secrets a save wrote (kept apart from the integration, so not in its diff): each
/// one entered counts as set, or as changed when `had` one before.
fn entered_secrets(
    credentials: &snowbound_core::Credentials,
    had: bool,
) -> Vec<(&'static str, bool, bool)> {
    [
        ("password", credentials.password.is_some()),
        ("client_secret", credentials.client_secret.is_some()),
        ("api_key", credentials.api_key.is_some()),
    ]
    .into_iter()
    .filter(|(_, entered)| *entered)
    .map(|(field, _)| (field, had, true))
    .collect()
}

#[derive(Clone)]
pub struct IntegrationService {
    store: Arc<dyn Store>,
    waker: EngineWaker,
    /// Where credentials may be sent: the ServiceNow client's rule, checked at save time.
    policy: InstancePolicy,
    choices: Arc<ChoiceCache>,
    /// Routing (which integrations serve a team) is cached; every change is told.
    lookups: Arc<Lookups>,
    audit: AuditService,
}

impl IntegrationService {
    pub fn new(
        store: Arc<dyn Store>,
        waker: EngineWaker,
        policy: InstancePolicy,
        choices: Arc<ChoiceCache>,
        lookups: Arc<Lookups>,
    ) -> Self {
        IntegrationService {
            audit: AuditService::new(store.clone()),
            store,
            waker,
            policy,
            choices,
            lookups,
        }
    }

    async fn changed(&self) {
        self.lookups
            .changed(&*self.store, Changed::Integrations)
            .await;
    }

    /// The integration if the caller may see it; others' integrations do not exist.
    pub async fn visible(&self, caller: &Caller, id: Uuid) -> ServiceResult<IntegrationRecord> {
        visible(caller, self.store.get_integration(id)).await
    }

    /// The integration if the caller may change it: a token of its root team.
    pub async fn owned(&self, caller: &Caller, id: Uuid) -> ServiceResult<IntegrationRecord> {
        let record = self.visible(caller, id).await?;
        if !caller.owns_integration(&record.integration) {
            return Err(ServiceError::Forbidden(
                "only a token of the integration's root team may change it",
            ));
        }
        Ok(record)
    }

    pub async fn list(&self, caller: &Caller) -> ServiceResult<Vec<IntegrationRecord>> {
        Ok(self
            .store
            .list_integrations()
            .await?
            .into_iter()
            .filter(|r| caller.sees_integration(&r.integration))
            .collect())
    }

    pub async fn create(
        &self,
        caller: &Caller,
        input: IntegrationInput,
    ) -> ServiceResult<IntegrationRecord> {
        let checked = self.check(caller, input, None).await?;
        if checked
            .credentials
            .missing_for(&checked.servicenow.auth)
            .is_some()
        {
            return Err(ServiceError::Internal(
                "a checked new integration lacks a secret",
            ));
        }
        let now = Utc::now();
        let integration = Integration {
            id: new_id(),
            display_name: checked.display_name,
            root_team_id: checked.root_team_id,
            team_ids: checked.team_ids,
            forwarding: checked.forwarding,
            servicenow: checked.servicenow,
            created_at: now,
            updated_at: now,
        };
        self.store
            .create_integration(&integration, &checked.credentials)
            .await?;
        self.changed().await;
        let secrets = entered_secrets(&checked.credentials, false);
        self.audit
            .record(
                &caller.actor,
                "integration",
                integration.id,
                "create",
                (&Value::Null, &snapshot(&integration)),
                &secrets,
            )
            .await;
        Ok(self.store.get_integration(integration.id).await?)
    }

    /// Replaces the integration's settings by `input` (the whole integration as the
    /// caller wants it; its secrets only those entered).
    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        input: IntegrationInput,
    ) -> ServiceResult<IntegrationRecord> {
        let current = self.owned(caller, id).await?.integration;
        let checked = self.check(caller, input, Some(&current)).await?;
        let integration = Integration {
            id: current.id,
            display_name: checked.display_name,
            root_team_id: checked.root_team_id,
            team_ids: checked.team_ids,
            forwarding: checked.forwarding,
            servicenow: checked.servicenow,
            created_at: current.created_at,
            updated_at: Utc::now(),
        };
        let updated = self
            .store
            .update_integration(&integration, &checked.credentials)
            .await;
        named(updated, "integration")?;
        self.changed().await;
        let secrets = entered_secrets(&checked.credentials, true);
        self.audit
            .record(
                &caller.actor,
                "integration",
                id,
                "update",
                (&snapshot(&current), &snapshot(&integration)),
                &secrets,
            )
            .await;
        // New settings un-park and bump every link: the engine re-applies them now.
        self.waker.wake();
        self.choices.invalidate(id);
        Ok(self.store.get_integration(id).await?)
    }

    pub async fn delete(&self, caller: &Caller, id: Uuid) -> ServiceResult<()> {
        let current = self.owned(caller, id).await?.integration;
        // A servicenow source reads through it: deleting it would leave the source deaf,
        // its pokes retried for ever. The source goes first.
        let readers: Vec<String> = self
            .store
            .list_sources(None)
            .await?
            .into_iter()
            .filter(|s| {
                s.servicenow
                    .as_ref()
                    .is_some_and(|n| n.integration_id == id)
            })
            .map(|s| s.name)
            .collect();
        if !readers.is_empty() {
            return Err(ServiceError::Conflict {
                code: "integration_in_use",
                message: format!(
                    "servicenow sources read through this integration ({}); delete them first",
                    readers.join(", ")
                ),
                field: None,
            });
        }
        self.choices.invalidate(id);
        gone_is_fine(self.store.delete_integration(id).await)?;
        self.changed().await;
        self.audit
            .record(
                &caller.actor,
                "integration",
                id,
                "delete",
                (&snapshot(&current), &Value::Null),
                &[],
            )
            .await;
        Ok(())
    }

    /// Validates everything, reporting every bad field (the first leads the error).
    /// `current` is the stored integration on a change (`None` on create).
    /// A team token may only add its own teams; other teams are reported as unknown. Teams
    /// already on the integration are not checked again: an admin may have shared it with
    /// a team its root team cannot see.
    async fn check(
        &self,
        caller: &Caller,
        input: IntegrationInput,
        current: Option<&Integration>,
    ) -> ServiceResult<Checked> {
        let store = &*self.store;
        let mut errors = Vec::new();
        let display_name = input.display_name.trim().to_owned();
        if display_name.is_empty() {
            errors.push(FieldError::new("display_name", "is required"));
        }
        errors.extend(check_display_name(&display_name));
        let unchanged_root = current.is_some_and(|c| c.root_team_id == input.root_team_id);
        if !unchanged_root && !team_exists(store, caller, input.root_team_id).await? {
            errors.push(FieldError::new("root_team_id", "no such team"));
        }
        let already_shared = |team: &Uuid| current.is_some_and(|c| c.all_team_ids().contains(team));
        let mut team_ids = Vec::new();
        for team in input.team_ids {
            if team == input.root_team_id || team_ids.contains(&team) {
                continue;
            }
            if !already_shared(&team) && !team_exists(store, caller, team).await? {
                errors.push(FieldError::new("team_ids", format!("no such team {team}")));
            }
            team_ids.push(team);
        }
        let servicenow = input.servicenow.to_settings();
        let credentials = checked_credentials(&input.servicenow, &servicenow, current, &mut errors);
        let policy = self.policy;
        let url_errors_before = errors.len();
        let legacy = uses_top_level_form(&input.servicenow);
        // An input naming the user at the top level gets its errors named there too.
        errors.extend(
            validate_servicenow(&servicenow, policy)
                .into_iter()
                .map(|mut e| {
                    if legacy && e.field == "servicenow.auth.username" {
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
            return Err(ServiceError::InvalidFields(errors));
        }
        Ok(Checked {
            display_name,
            root_team_id: input.root_team_id,
            team_ids,
            forwarding: input.forwarding,
            servicenow,
            credentials,
        })
    }
}
