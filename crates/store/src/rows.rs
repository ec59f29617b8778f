//! Conversions between database rows and domain types, shared by both backends: their
//! columns have the same shapes (TEXT ids and JSON, BIGINT milliseconds), so only the
//! row type differs and `row_conversions!` stamps the functions out for each.

use chrono::{DateTime, TimeZone, Utc};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::{Result, StoreError};

pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub fn opt_time(ms: Option<i64>) -> Option<DateTime<Utc>> {
    ms.map(time)
}

pub fn uuid(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(format!("bad id `{text}`: {e}")))
}

pub fn json<T: DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("bad JSON column: {e}")))
}

pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain types serialize to JSON")
}

pub fn parse<T: std::str::FromStr>(text: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

/// `row_conversions!(RowType)` defines `incident`, `timeline_entry`, `integration`,
/// `link` and `api_call` for that backend's row type.
macro_rules! row_conversions {
    ($row:ty) => {
        use chrono::Utc;
        use snowbound_core::{Incident, Integration, ServiceNowSettings, TimelineEntry};
        use sqlx::Row;

        use crate::rows::parse;
        pub use crate::rows::{json, ms, opt_time, time, to_json, uuid};
        use crate::types::{ApiCallRecord, IntegrationHealth, IntegrationRecord, Link, LinkState};
        use crate::{Result, StoreError};

        pub fn incident(row: &$row) -> Result<Incident> {
            Ok(Incident {
                id: uuid(row.try_get("id")?)?,
                team_id: uuid(row.try_get("team_id")?)?,
                title: row.try_get("title")?,
                description: row.try_get("description")?,
                severity: parse(row.try_get("severity")?)?,
                status: parse(row.try_get("status")?)?,
                attributes: json(row.try_get("attributes")?)?,
                resolve_comment: row.try_get("resolve_comment")?,
                created_at: time(row.try_get("created_at")?),
                updated_at: time(row.try_get("updated_at")?),
            })
        }

        pub fn timeline_entry(row: &$row) -> Result<TimelineEntry> {
            Ok(TimelineEntry {
                at: time(row.try_get("at")?),
                actor: row.try_get("actor")?,
                kind: row.try_get("kind")?,
                detail: row.try_get("detail")?,
            })
        }

        pub fn integration(row: &$row) -> Result<IntegrationRecord> {
            let settings: ServiceNowSettings = json(row.try_get("settings")?)?;
            let sealed: String = row.try_get("password_sealed")?;
            Ok(IntegrationRecord {
                integration: Integration {
                    id: uuid(row.try_get("id")?)?,
                    display_name: row.try_get("display_name")?,
                    root_team_id: uuid(row.try_get("root_team_id")?)?,
                    team_ids: json(row.try_get("team_ids")?)?,
                    forwarding: parse(row.try_get("forwarding")?)?,
                    servicenow: settings,
                    created_at: time(row.try_get("created_at")?),
                    updated_at: time(row.try_get("updated_at")?),
                },
                password_set: !sealed.is_empty(),
                health: IntegrationHealth {
                    failing: row.try_get("failing")?,
                    paused_until: Some(time(row.try_get("paused_until")?))
                        .filter(|t| *t > Utc::now()),
                    last_success_at: opt_time(row.try_get("last_success_at")?),
                    failing_links: row.try_get("failing_links")?,
                },
            })
        }

        pub fn link(row: &$row) -> Result<Link> {
            let state: String = row.try_get("state")?;
            let snapshot: Option<String> = row.try_get("snapshot")?;
            Ok(Link {
                incident_id: uuid(row.try_get("incident_id")?)?,
                integration_id: uuid(row.try_get("integration_id")?)?,
                sys_id: row.try_get("sys_id")?,
                number: row.try_get("number")?,
                servicenow_state: row.try_get("servicenow_state")?,
                pushed: json(row.try_get("pushed")?)?,
                snapshot: snapshot.as_deref().map(json).transpose()?,
                rev: row.try_get("rev")?,
                synced_rev: row.try_get("synced_rev")?,
                state: LinkState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("bad link state `{state}`")))?,
                attempts: row.try_get("attempts")?,
                next_attempt_at: time(row.try_get("next_attempt_at")?),
                last_error: row.try_get("last_error")?,
                create_unsure: row.try_get::<bool, _>("create_unsure")?,
                last_synced_at: opt_time(row.try_get("last_synced_at")?),
                created_at: time(row.try_get("created_at")?),
            })
        }

        pub fn api_call(row: &$row) -> Result<ApiCallRecord> {
            let incident_id: Option<String> = row.try_get("incident_id")?;
            Ok(ApiCallRecord {
                integration_id: uuid(row.try_get("integration_id")?)?,
                incident_id: incident_id.as_deref().map(uuid).transpose()?,
                at: time(row.try_get("at")?),
                method: row.try_get("method")?,
                url: row.try_get("url")?,
                status: row.try_get::<Option<i64>, _>("status")?.map(|s| s as u16),
                duration_ms: row.try_get::<i64, _>("duration_ms")? as u64,
                request_body: row.try_get("request_body")?,
                response_body: row.try_get("response_body")?,
                error: row.try_get("error")?,
            })
        }
    };
}
pub(crate) use row_conversions;
