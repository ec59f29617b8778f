//! Rows to domain types. Both schemas have the same shapes (text ids and JSON, integer
//! milliseconds), so one conversion serves both backends.

use chrono::{DateTime, TimeZone, Utc};
use serde::de::DeserializeOwned;
use snowbound_core::ingest::grafana::GrafanaSettings;
use snowbound_core::routing::RoutingRule;
use snowbound_core::source::{Source, SourceKind};
use snowbound_core::{Incident, Integration, ServiceNowSettings, Team, TimelineEntry};
use uuid::Uuid;

use super::dialect::SqlRow;
use crate::accounts::User;
use crate::types::{
    ApiCallRecord, ApiToken, IntegrationHealth, IntegrationRecord, KeptPayload, Link, LinkState,
};
use crate::{Result, StoreError};

pub fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain types serialize to JSON")
}

fn json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("bad JSON column: {e}")))
}

fn parse<T: std::str::FromStr>(text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

pub(super) fn parse_uuid(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(format!("bad id `{text}`: {e}")))
}

/// Typed reads of the columns every table shares the shape of.
trait Columns: SqlRow {
    fn uuid(&self, column: &str) -> Result<Uuid> {
        parse_uuid(&self.text(column)?)
    }

    fn opt_uuid(&self, column: &str) -> Result<Option<Uuid>> {
        self.opt_text(column)?
            .as_deref()
            .map(parse_uuid)
            .transpose()
    }

    fn time(&self, column: &str) -> Result<DateTime<Utc>> {
        Ok(time(self.int(column)?))
    }

    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>> {
        Ok(self.opt_int(column)?.map(time))
    }

    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T> {
        json(&self.text(column)?)
    }
}

impl<R: SqlRow> Columns for R {}

/// A link's (incident, integration).
pub fn link_key(row: &impl SqlRow) -> Result<(Uuid, Uuid)> {
    Ok((row.uuid("incident_id")?, row.uuid("integration_id")?))
}

pub fn team(row: &impl SqlRow) -> Result<Team> {
    Ok(Team {
        id: row.uuid("id")?,
        name: row.text("name")?,
        created_at: row.time("created_at")?,
    })
}

pub fn token(row: &impl SqlRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: row.uuid("id")?,
        name: row.text("name")?,
        hash: row.text("hash")?,
        team_ids: row.json("team_ids")?,
        created_at: row.time("created_at")?,
    })
}

pub fn incident(row: &impl SqlRow) -> Result<Incident> {
    Ok(Incident {
        id: row.uuid("id")?,
        team_id: row.uuid("team_id")?,
        title: row.text("title")?,
        description: row.text("description")?,
        severity: parse(&row.text("severity")?)?,
        status: parse(&row.text("status")?)?,
        attributes: row.json("attributes")?,
        resolve_comment: row.opt_text("resolve_comment")?,
        source_id: row.opt_uuid("source_id")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub fn firing(row: &impl SqlRow) -> Result<crate::types::RuleFiring> {
    Ok(crate::types::RuleFiring {
        team_id: row.uuid("team_id")?,
        rule_id: row.uuid("rule_id")?,
        rule_name: row.text("rule_name")?,
        incident_id: row.opt_uuid("incident_id")?,
        kind: row.text("kind")?,
        detail: row.text("detail")?,
        at: row.time("at")?,
    })
}

pub fn timeline_entry(row: &impl SqlRow) -> Result<TimelineEntry> {
    Ok(TimelineEntry {
        at: row.time("at")?,
        actor: row.text("actor")?,
        kind: row.text("kind")?,
        detail: row.text("detail")?,
    })
}

/// Needs the `failing_links` column besides the table's own.
pub fn integration(row: &impl SqlRow) -> Result<IntegrationRecord> {
    let settings: ServiceNowSettings = row.json("settings")?;
    Ok(IntegrationRecord {
        integration: Integration {
            id: row.uuid("id")?,
            display_name: row.text("display_name")?,
            root_team_id: row.uuid("root_team_id")?,
            team_ids: row.json("team_ids")?,
            forwarding: parse(&row.text("forwarding")?)?,
            servicenow: settings,
            created_at: row.time("created_at")?,
            updated_at: row.time("updated_at")?,
        },
        password_set: !row.text("password_sealed")?.is_empty(),
        client_secret_set: !row.text("client_secret_sealed")?.is_empty(),
        api_key_set: !row.text("api_key_sealed")?.is_empty(),
        health: IntegrationHealth {
            failing: row.opt_text("failing")?,
            paused_until: Some(row.time("paused_until")?).filter(|t| *t > Utc::now()),
            last_success_at: row.opt_time("last_success_at")?,
            failing_links: row.int("failing_links")?,
        },
    })
}

pub fn link(row: &impl SqlRow) -> Result<Link> {
    let state = row.text("state")?;
    Ok(Link {
        incident_id: row.uuid("incident_id")?,
        integration_id: row.uuid("integration_id")?,
        sys_id: row.opt_text("sys_id")?,
        number: row.opt_text("number")?,
        servicenow_state: row.opt_text("servicenow_state")?,
        pushed: row.json("pushed")?,
        snapshot: row.opt_text("snapshot")?.as_deref().map(json).transpose()?,
        rev: row.int("rev")?,
        synced_rev: row.int("synced_rev")?,
        state: LinkState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("bad link state `{state}`")))?,
        attempts: row.int("attempts")?,
        next_attempt_at: row.time("next_attempt_at")?,
        last_error: row.opt_text("last_error")?,
        create_unsure: row.flag("create_unsure")?,
        last_synced_at: row.opt_time("last_synced_at")?,
        created_at: row.time("created_at")?,
    })
}

pub fn api_call(row: &impl SqlRow) -> Result<ApiCallRecord> {
    Ok(ApiCallRecord {
        integration_id: row.uuid("integration_id")?,
        incident_id: row.opt_uuid("incident_id")?,
        at: row.time("at")?,
        method: row.text("method")?,
        url: row.text("url")?,
        status: row.opt_int("status")?.map(|s| s as u16),
        duration_ms: row.int("duration_ms")? as u64,
        request_body: row.opt_text("request_body")?,
        response_body: row.opt_text("response_body")?,
        error: row.opt_text("error")?,
    })
}

pub fn user(row: &impl SqlRow) -> Result<User> {
    Ok(User {
        id: row.uuid("id")?,
        email: row.text("email")?,
        password_hash: row.text("password_hash")?,
        is_admin: row.flag("is_admin")?,
        team_ids: row.json("team_ids")?,
        created_at: row.time("created_at")?,
    })
}

pub fn source(row: &impl SqlRow) -> Result<Source> {
    let kind = row.text("kind")?;
    Ok(Source {
        id: row.uuid("id")?,
        team_id: row.uuid("team_id")?,
        kind: SourceKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("bad source kind `{kind}`")))?,
        name: row.text("name")?,
        severity_map: row.json("severity_map")?,
        servicenow: row.opt_text("servicenow")?.map(|t| json(&t)).transpose()?,
        email: row.opt_text("email")?.map(|t| json(&t)).transpose()?,
        grafana: row
            .opt_text("grafana")?
            .map(|text| json::<GrafanaSettings>(&text))
            .transpose()?
            .map(|mut settings| -> Result<GrafanaSettings> {
                settings.hmac_secret_set = !row.text("hmac_secret_sealed")?.is_empty();
                Ok(settings)
            })
            .transpose()?,
        json: row
            .opt_text("json_mapping")?
            .map(|text| json(&text))
            .transpose()?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

pub fn kept_payload(row: &impl SqlRow) -> Result<KeptPayload> {
    Ok(KeptPayload {
        id: row.uuid("id")?,
        received_at: row.time("received_at")?,
        body: row.text("body")?,
        truncated: row.flag("truncated")?,
    })
}

pub fn rule(row: &impl SqlRow) -> Result<RoutingRule> {
    Ok(RoutingRule {
        id: row.uuid("id")?,
        team_id: row.uuid("team_id")?,
        name: row.text("name")?,
        position: row.int("position")?,
        when: row.json("conditions")?,
        then: row.json("actions")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}
