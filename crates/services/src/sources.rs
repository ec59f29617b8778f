//! Alert sources: create, rename or re-map severities, rotate the secret, delete.
//!
//! The secret is kept sealed with the instance key (like integration passwords) besides
//! its hash, so the ingest URL can be shown again to whoever may see the source: it is
//! configuration people copy into Alertmanager, and a URL shown once is a URL that ends
//! up in a wiki. Rotation is the answer to a leak.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use snowbound_core::checks::checked_name;
use snowbound_core::inbound::settings::validate_servicenow_source;
use snowbound_core::inbound::ServiceNowSourceSettings;
use snowbound_core::ingest::email::{validate_email_settings, EmailSettings};
use snowbound_core::ingest::grafana::GrafanaSettings;
use snowbound_core::ingest::json_mapping::{self, JsonMapping, Preview};
use snowbound_core::source::{Source, SourceKind};
use snowbound_core::validate::{check_text, limits};
use snowbound_core::{new_id, Severity};
use snowbound_store::{KeptPayload, Store};
use uuid::Uuid;

use crate::audit::{snapshot, AuditService};
use crate::caller::Caller;
use crate::error::{ServiceError, ServiceResult};
use crate::lookups::{Changed, Lookups};
use crate::scope::{gone_is_fine, named, require_team, visible};

/// Prefix of ingest secrets, so a leaked URL is recognisable in logs and scanners.
const SECRET_PREFIX: &str = "sbi_";

pub struct NewSource {
    pub team_id: Uuid,
    pub kind: SourceKind,
    pub name: String,
    pub severity_map: BTreeMap<String, Severity>,
    /// Required exactly for `servicenow` sources.
    pub servicenow: Option<ServiceNowSourceSettings>,
    /// Only for `email` sources; defaulted when absent.
    pub email: Option<EmailSettings>,
    /// Only for `grafana` sources; `None` there means unsigned, default headers.
    pub grafana: Option<GrafanaInput>,
    /// Only for `json` sources; may come later (payloads are kept meanwhile), but a
    /// mapping given must be complete.
    pub json: Option<JsonMapping>,
}

/// A `grafana` source's signature settings as a client sends them.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrafanaInput {
    /// Write-only. On a change `None` keeps the stored secret and `""` removes it; so
    /// it goes for the headers (`""` being the default).
    #[serde(default)]
    #[schema(value_type = Option<String>, write_only)]
    pub hmac_secret: Option<SecretString>,
    #[serde(default)]
    pub hmac_header: Option<String>,
    #[serde(default)]
    pub timestamp_header: Option<String>,
}

/// What a change sets; `None` keeps the stored value.
#[derive(Default)]
pub struct SourceChange {
    pub name: Option<String>,
    pub severity_map: Option<BTreeMap<String, Severity>>,
    /// Only for `email` sources.
    pub email: Option<EmailSettings>,
    pub grafana: Option<GrafanaInput>,
    pub json: Option<JsonMapping>,
}

/// An `email` source gets its settings (the defaults when none are given); other kinds
/// take none.
fn checked_email(
    kind: SourceKind,
    settings: Option<EmailSettings>,
) -> ServiceResult<Option<EmailSettings>> {
    match (kind, settings) {
        (SourceKind::Email, settings) => {
            let settings = settings.unwrap_or_default();
            let errors = validate_email_settings(&settings);
            if errors.is_empty() {
                Ok(Some(settings))
            } else {
                Err(ServiceError::InvalidFields(errors))
            }
        }
        (_, Some(_)) => Err(ServiceError::invalid(
            "email",
            "only an email source takes these settings",
        )),
        (_, None) => Ok(None),
    }
}

/// An email source's address: its secret without the prefix (64 hex digits, the longest
/// local part SMTP allows) at the node's mail domain.
pub fn email_address(secret: &SecretString, domain: &str) -> String {
    let secret = secret.expose_secret();
    let local = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    format!("{local}@{domain}")
}

/// A kept payload and what the source's current mapping makes of it.
pub struct PayloadView {
    pub payload: KeptPayload,
    pub preview: Preview,
}

/// The payload a preview runs on.
pub enum PreviewPayload {
    Given(Vec<u8>),
    /// A kept payload, 0 the newest.
    Kept(usize),
}

/// Longest Grafana shared secret taken.
const HMAC_SECRET_MAX_CHARS: usize = 500;

/// 256 random bits: guessing one is hopeless, so the URL alone may authenticate.
fn generate_secret() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    SecretString::from(format!("{SECRET_PREFIX}{}", hex::encode(bytes)))
}

/// Keys are the sender's words, matched case-insensitively.
fn checked_map(map: BTreeMap<String, Severity>) -> ServiceResult<BTreeMap<String, Severity>> {
    let mut checked = BTreeMap::new();
    for (word, severity) in map {
        let key = word.trim().to_ascii_lowercase();
        if key.is_empty() {
            return Err(ServiceError::invalid(
                "severity_map",
                "keys must not be empty",
            ));
        }
        // Not named in the path: the key may be the very text that is wrong.
        check_text(&key, limits::SEVERITY_WORD)
            .map_err(|message| ServiceError::invalid("severity_map", format!("a key {message}")))?;
        checked.insert(key, severity);
    }
    Ok(checked)
}

fn only_for(kind: &str) -> ServiceError {
    ServiceError::invalid(kind, format!("only a {kind} source takes these settings"))
}

/// The settings to store and the secret change: `None` keeps the stored one,
/// `Some(None)` removes it.
type CheckedGrafana = (GrafanaSettings, Option<Option<SecretString>>);

fn checked_grafana(input: GrafanaInput) -> ServiceResult<CheckedGrafana> {
    let blank = |v: Option<String>| v.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let settings = GrafanaSettings {
        hmac_header: blank(input.hmac_header),
        timestamp_header: blank(input.timestamp_header),
        hmac_secret_set: false,
    };
    let errors = settings.validate();
    if !errors.is_empty() {
        return Err(ServiceError::InvalidFields(errors));
    }
    let secret = match input.hmac_secret {
        None => None,
        Some(secret) if secret.expose_secret().is_empty() => Some(None),
        Some(secret) => {
            check_text(secret.expose_secret(), HMAC_SECRET_MAX_CHARS)
                .map_err(|message| ServiceError::invalid("grafana.hmac_secret", message))?;
            Some(Some(secret))
        }
    };
    Ok((settings, secret))
}

fn checked_mapping(mapping: JsonMapping) -> ServiceResult<JsonMapping> {
    let errors = json_mapping::validate(&mapping);
    if !errors.is_empty() {
        return Err(ServiceError::InvalidFields(errors));
    }
    Ok(mapping)
}

fn grafana_secret_set(source: &Source) -> bool {
    source.grafana.as_ref().is_some_and(|g| g.hmac_secret_set)
}

#[derive(Clone)]
pub struct SourceService {
    store: Arc<dyn Store>,
    /// Ingest finds sources here; every change of one is told.
    lookups: Arc<Lookups>,
    audit: AuditService,
}

impl SourceService {
    pub fn new(store: Arc<dyn Store>, lookups: Arc<Lookups>) -> Self {
        SourceService {
            audit: AuditService::new(store.clone()),
            store,
            lookups,
        }
    }

    /// The source if the caller may see it; other teams' sources do not exist.
    pub async fn visible(&self, caller: &Caller, id: Uuid) -> ServiceResult<Source> {
        visible(caller, self.store.get_source(id)).await
    }

    /// The source when it belongs to `team`: a page of one team must not act on another
    /// team's source, even one the caller may also see.
    pub async fn of_team(&self, caller: &Caller, team: Uuid, id: Uuid) -> ServiceResult<Source> {
        match self.visible(caller, id).await? {
            source if source.team_id == team => Ok(source),
            _ => Err(ServiceError::not_found("source")),
        }
    }

    /// The source whose ingest URL carries `secret`: the URL is a sender's only credential.
    pub async fn by_secret(&self, secret: &str) -> ServiceResult<Option<Source>> {
        Ok(self.lookups.source_by_secret(&*self.store, secret).await?)
    }

    /// The `email` source a mail to `local_part@<domain>` is for (see [`email_address`]).
    pub async fn by_email_local_part(&self, local_part: &str) -> ServiceResult<Option<Source>> {
        let valid = local_part.len() == 64 && local_part.bytes().all(|b| b.is_ascii_hexdigit());
        if !valid {
            return Ok(None);
        }
        let secret = format!("{SECRET_PREFIX}{}", local_part.to_ascii_lowercase());
        Ok(self
            .by_secret(&secret)
            .await?
            .filter(|s| s.kind == SourceKind::Email))
    }

    /// The source's ingest secret, the only credential a sender needs.
    pub async fn secret(&self, source: &Source) -> ServiceResult<SecretString> {
        named(self.store.source_secret(source.id).await, "source")
    }

    pub async fn list(&self, caller: &Caller, team: Option<Uuid>) -> ServiceResult<Vec<Source>> {
        let teams = match team {
            Some(team) if !caller.sees_team(team) => return Ok(Vec::new()),
            Some(team) => Some(vec![team]),
            None => caller.team_filter(),
        };
        Ok(self.store.list_sources(teams.as_deref()).await?)
    }

    pub async fn create(&self, caller: &Caller, new: NewSource) -> ServiceResult<Source> {
        let name = checked_name(&new.name)?;
        let severity_map = checked_map(new.severity_map)?;
        require_team(&*self.store, caller, new.team_id).await?;
        let servicenow = self
            .checked_servicenow(new.kind, new.team_id, new.servicenow)
            .await?;
        let email = checked_email(new.kind, new.email)?;
        let (grafana, hmac_secret) = match (new.kind, new.grafana) {
            (SourceKind::Grafana, input) => {
                let (settings, secret) = checked_grafana(input.unwrap_or_default())?;
                (Some(settings), secret.flatten())
            }
            (_, Some(_)) => return Err(only_for("grafana")),
            (_, None) => (None, None),
        };
        let json = match (new.kind, new.json) {
            (SourceKind::Json, Some(mapping)) => Some(checked_mapping(mapping)?),
            (_, Some(_)) => return Err(only_for("json")),
            (_, None) => None,
        };
        let now = Utc::now();
        let source = Source {
            id: new_id(),
            team_id: new.team_id,
            kind: new.kind,
            name,
            severity_map,
            servicenow,
            email,
            grafana,
            json,
            created_at: now,
            updated_at: now,
        };
        self.store
            .create_source(&source, &generate_secret())
            .await?;
        // Nobody knows the ingest URL before this answers, so no unsigned request can
        // slip in between the two writes.
        if let Some(secret) = &hmac_secret {
            self.store
                .set_source_hmac_secret(source.id, Some(secret))
                .await?;
        }
        let source = match hmac_secret {
            Some(_) => self.store.get_source(source.id).await?,
            None => source,
        };
        if let Some(settings) = &source.servicenow {
            let interval = settings
                .delivery
                .polls()
                .then(|| i64::from(settings.poll_interval_s) * 1000);
            self.store.set_poll_schedule(source.id, interval).await?;
        }
        // Neither the ingest secret nor the Grafana one is part of the serialized form.
        let grafana_secret = grafana_secret_set(&source);
        self.audit
            .record(
                &caller.actor,
                "source",
                source.id,
                "create",
                (&Value::Null, &snapshot(&source)),
                &[
                    ("secret", false, true),
                    ("grafana.hmac_secret", false, grafana_secret),
                ],
            )
            .await;
        Ok(source)
    }

    /// A `servicenow` source reads through an integration of its own team; other kinds
    /// carry no such settings.
    async fn checked_servicenow(
        &self,
        kind: SourceKind,
        team_id: Uuid,
        settings: Option<ServiceNowSourceSettings>,
    ) -> ServiceResult<Option<ServiceNowSourceSettings>> {
        let settings = match (kind, settings) {
            (SourceKind::Servicenow, Some(settings)) => settings,
            (SourceKind::Servicenow, None) => {
                return Err(ServiceError::invalid(
                    "servicenow",
                    "a servicenow source needs its settings",
                ))
            }
            (_, Some(_)) => {
                return Err(ServiceError::invalid(
                    "servicenow",
                    "only a servicenow source takes these settings",
                ))
            }
            (_, None) => return Ok(None),
        };
        let serves = match self.store.get_integration(settings.integration_id).await {
            Ok(record) => record.integration.serves_team(team_id),
            Err(snowbound_store::StoreError::NotFound) => false,
            Err(e) => return Err(e.into()),
        };
        if !serves {
            return Err(ServiceError::invalid(
                "servicenow.integration_id",
                "no such integration on this team",
            ));
        }
        let errors = validate_servicenow_source(&settings);
        if !errors.is_empty() {
            return Err(ServiceError::InvalidFields(errors));
        }
        Ok(Some(settings))
    }

    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        change: SourceChange,
    ) -> ServiceResult<Source> {
        let mut source = self.visible(caller, id).await?;
        let before = snapshot(&source);
        let had_grafana_secret = grafana_secret_set(&source);
        if let Some(name) = change.name {
            source.name = checked_name(&name)?;
        }
        if let Some(map) = change.severity_map {
            source.severity_map = checked_map(map)?;
        }
        if let Some(email) = change.email {
            source.email = checked_email(source.kind, Some(email))?;
        }
        let mut new_secret = None;
        if let Some(input) = change.grafana {
            if source.kind != SourceKind::Grafana {
                return Err(only_for("grafana"));
            }
            let stored = source.grafana.clone().unwrap_or_default();
            let set = stored.hmac_secret_set;
            // A header left out keeps its value; `""` returns it to the default.
            let input = GrafanaInput {
                hmac_header: input.hmac_header.or(stored.hmac_header),
                timestamp_header: input.timestamp_header.or(stored.timestamp_header),
                hmac_secret: input.hmac_secret,
            };
            let (mut settings, secret) = checked_grafana(input)?;
            settings.hmac_secret_set = match &secret {
                Some(secret) => secret.is_some(),
                None => set,
            };
            source.grafana = Some(settings);
            new_secret = secret;
        }
        if let Some(mapping) = change.json {
            if source.kind != SourceKind::Json {
                return Err(only_for("json"));
            }
            source.json = Some(checked_mapping(mapping)?);
        }
        source.updated_at = Utc::now();
        named(self.store.update_source(&source).await, "source")?;
        // Only a secret entered (or `""` removing it) changed it.
        let rewritten = match &new_secret {
            Some(_) => vec![(
                "grafana.hmac_secret",
                had_grafana_secret,
                grafana_secret_set(&source),
            )],
            None => Vec::new(),
        };
        if let Some(secret) = new_secret {
            let stored = self.store.set_source_hmac_secret(id, secret.as_ref()).await;
            named(stored, "source")?;
        }
        self.lookups
            .changed(&*self.store, Changed::Source(id))
            .await;
        self.audit
            .record(
                &caller.actor,
                "source",
                id,
                "update",
                (&before, &snapshot(&source)),
                &rewritten,
            )
            .await;
        Ok(source)
    }

    /// A `grafana` source's shared secret, if it has one.
    pub async fn hmac_secret(&self, source: &Source) -> ServiceResult<Option<SecretString>> {
        named(self.store.source_hmac_secret(source.id).await, "source")
    }

    /// Keeps a body a `json` source received, before it is read: a body the mapping
    /// cannot read is exactly one the admin needs to see.
    pub async fn keep_payload(&self, source: &Source, body: &[u8]) -> ServiceResult<()> {
        let kept = self
            .store
            .keep_source_payload(source.id, Utc::now(), body)
            .await;
        named(kept, "source")
    }

    /// The kept payloads, newest first, each with what the current mapping makes of it.
    pub async fn payloads(&self, caller: &Caller, id: Uuid) -> ServiceResult<Vec<PayloadView>> {
        let source = self.json_source(caller, id).await?;
        let mapping = source.json.unwrap_or_default();
        let kept = self.store.source_payloads(source.id).await?;
        Ok(kept
            .into_iter()
            .map(|payload| PayloadView {
                preview: json_mapping::preview(&mapping, payload.body.as_bytes()),
                payload,
            })
            .collect())
    }

    /// What `payload` would become under `mapping`, which need not be complete or saved.
    pub async fn preview(
        &self,
        caller: &Caller,
        id: Uuid,
        mapping: &JsonMapping,
        payload: PreviewPayload,
    ) -> ServiceResult<Preview> {
        let source = self.json_source(caller, id).await?;
        let body = match payload {
            PreviewPayload::Given(body) => body,
            PreviewPayload::Kept(index) => {
                let mut kept = self.store.source_payloads(source.id).await?;
                if kept.is_empty() {
                    return Err(ServiceError::invalid(
                        "payload",
                        "this source has kept no payload yet; send one to its ingest URL or give `payload`",
                    ));
                }
                if index >= kept.len() {
                    return Err(ServiceError::invalid(
                        "payload_index",
                        format!("{} payloads are kept (0 is the newest)", kept.len()),
                    ));
                }
                kept.swap_remove(index).body.into_bytes()
            }
        };
        Ok(json_mapping::preview(mapping, &body))
    }

    async fn json_source(&self, caller: &Caller, id: Uuid) -> ServiceResult<Source> {
        let source = self.visible(caller, id).await?;
        if source.kind != SourceKind::Json {
            return Err(ServiceError::invalid(
                "type",
                "only a json source keeps payloads and has a mapping",
            ));
        }
        Ok(source)
    }

    /// A new secret; the old URL stops working when this answers.
    pub async fn rotate(&self, caller: &Caller, id: Uuid) -> ServiceResult<Source> {
        self.visible(caller, id).await?;
        let rotated = self
            .store
            .rotate_source_secret(id, &generate_secret())
            .await;
        named(rotated, "source")?;
        self.lookups
            .changed(&*self.store, Changed::Source(id))
            .await;
        self.audit
            .record(
                &caller.actor,
                "source",
                id,
                "rotate",
                (&Value::Null, &Value::Null),
                &[("secret", true, true)],
            )
            .await;
        named(self.store.get_source(id).await, "source")
    }

    /// Incidents the source opened stay; only the way in closes.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> ServiceResult<()> {
        let current = self.visible(caller, id).await?;
        gone_is_fine(self.store.delete_source(id).await)?;
        self.lookups
            .changed(&*self.store, Changed::Source(id))
            .await;
        self.audit
            .record(
                &caller.actor,
                "source",
                id,
                "delete",
                (&snapshot(&current), &Value::Null),
                &[],
            )
            .await;
        Ok(())
    }
}
