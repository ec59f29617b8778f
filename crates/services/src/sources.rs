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
use secrecy::SecretString;
use snowbound_core::checks::checked_name;
use snowbound_core::inbound::settings::validate_servicenow_source;
use snowbound_core::inbound::ServiceNowSourceSettings;
use snowbound_core::source::{Source, SourceKind};
use snowbound_core::validate::{check_text, limits};
use snowbound_core::{new_id, Severity};
use snowbound_store::Store;
use uuid::Uuid;

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
}

/// What a change sets; `None` keeps the stored value.
#[derive(Default)]
pub struct SourceChange {
    pub name: Option<String>,
    pub severity_map: Option<BTreeMap<String, Severity>>,
}

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

#[derive(Clone)]
pub struct SourceService {
    store: Arc<dyn Store>,
    /// Ingest finds sources here; every change of one is told.
    lookups: Arc<Lookups>,
}

impl SourceService {
    pub fn new(store: Arc<dyn Store>, lookups: Arc<Lookups>) -> Self {
        SourceService { store, lookups }
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
        let now = Utc::now();
        let source = Source {
            id: new_id(),
            team_id: new.team_id,
            kind: new.kind,
            name,
            severity_map,
            servicenow,
            created_at: now,
            updated_at: now,
        };
        self.store
            .create_source(&source, &generate_secret())
            .await?;
        if let Some(settings) = &source.servicenow {
            let interval = settings
                .delivery
                .polls()
                .then(|| i64::from(settings.poll_interval_s) * 1000);
            self.store.set_poll_schedule(source.id, interval).await?;
        }
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
        if let Some(name) = change.name {
            source.name = checked_name(&name)?;
        }
        if let Some(map) = change.severity_map {
            source.severity_map = checked_map(map)?;
        }
        source.updated_at = Utc::now();
        named(self.store.update_source(&source).await, "source")?;
        self.lookups
            .changed(&*self.store, Changed::Source(id))
            .await;
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
        named(self.store.get_source(id).await, "source")
    }

    /// Incidents the source opened stay; only the way in closes.
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> ServiceResult<()> {
        self.visible(caller, id).await?;
        gone_is_fine(self.store.delete_source(id).await)?;
        self.lookups
            .changed(&*self.store, Changed::Source(id))
            .await;
        Ok(())
    }
}
