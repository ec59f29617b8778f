//! The settings of inbound sync: a `servicenow` source's own (`servicenow: {…}` of
//! `POST /api/v1/sources`, names fixed by issue #15) and, per integration, which system
//! wins a conflict on state and on severity.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::validate::FieldError;

/// Shortest poll interval: one query every five seconds is already more than most
/// instances' rate-limit rules like from one integration user.
pub const MIN_POLL_INTERVAL_S: u32 = 5;
pub const DEFAULT_POLL_INTERVAL_S: u32 = 60;
/// An encoded query longer than this would not fit the URL limits of proxies in front
/// of instances once combined with the watermark.
pub const OPEN_FILTER_MAX_CHARS: usize = 2000;

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Only the business rule's pokes (no polling).
    Push,
    /// Only polling; needs nothing inside ServiceNow but read rights.
    Poll,
    /// Pokes for speed, polling for whatever a poke lost (`executeAsync` promises nothing).
    #[default]
    PushAndPoll,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Push => "push",
            Delivery::Poll => "poll",
            Delivery::PushAndPoll => "push_and_poll",
        }
    }

    pub fn polls(self) -> bool {
        !matches!(self, Delivery::Push)
    }

    pub fn accepts_pokes(self) -> bool {
        !matches!(self, Delivery::Poll)
    }
}

/// Which ServiceNow changes reach the incident. Severity is opt-in: urgency is often
/// re-triaged by the service desk for its own queue, not for the on-call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct Transitions {
    pub resolve: bool,
    pub reopen: bool,
    pub acknowledge: bool,
    pub severity: bool,
}

impl Default for Transitions {
    fn default() -> Self {
        Transitions {
            resolve: true,
            reopen: true,
            acknowledge: true,
            severity: false,
        }
    }
}

fn default_poll_interval() -> u32 {
    DEFAULT_POLL_INTERVAL_S
}

/// A `servicenow` source's settings: it reads ServiceNow through an existing
/// integration's connection and credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceNowSourceSettings {
    pub integration_id: Uuid,
    #[serde(default)]
    pub delivery: Delivery,
    #[serde(default = "default_poll_interval")]
    pub poll_interval_s: u32,
    /// Records matching this encoded query, held by no incident, open one.
    #[serde(default)]
    pub open_filter: Option<String>,
    #[serde(default)]
    pub transitions: Transitions,
}

impl ServiceNowSourceSettings {
    pub fn new(integration_id: Uuid) -> Self {
        ServiceNowSourceSettings {
            integration_id,
            delivery: Delivery::default(),
            poll_interval_s: DEFAULT_POLL_INTERVAL_S,
            open_filter: None,
            transitions: Transitions::default(),
        }
    }

    /// The filter, unless it is blank (which means "no ServiceNow-born incidents").
    pub fn open_filter(&self) -> Option<&str> {
        self.open_filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
    }
}

/// Every problem, each naming its field (`servicenow.poll_interval_s`). Whether the
/// integration exists and serves the source's team is the caller's to check (it needs
/// the store).
pub fn validate_servicenow_source(settings: &ServiceNowSourceSettings) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if settings.poll_interval_s < MIN_POLL_INTERVAL_S {
        errors.push(FieldError::new(
            "servicenow.poll_interval_s",
            format!("must be at least {MIN_POLL_INTERVAL_S} seconds"),
        ));
    }
    if let Some(filter) = &settings.open_filter {
        if let Err(message) = check_open_filter(filter) {
            errors.push(FieldError::new("servicenow.open_filter", message));
        }
    }
    errors
}

/// An instance silently ignores the parts of a query it cannot read, so a typo in a
/// filter would widen it to every record and open an incident for each. Every term must
/// therefore be one [`snowbound_encoded_query::parse`] understands.
pub fn check_open_filter(filter: &str) -> Result<(), String> {
    crate::validate::check_text(filter, OPEN_FILTER_MAX_CHARS)?;
    let filter = filter.trim();
    if filter.is_empty() {
        return Ok(());
    }
    let mut conditions = 0;
    for (i, raw) in filter.split('^').enumerate() {
        let term = if i == 0 {
            raw
        } else {
            raw.strip_prefix("NQ")
                .or_else(|| raw.strip_prefix("OR").filter(|r| !r.starts_with("DERBY")))
                .unwrap_or(raw)
        };
        if term.is_empty() {
            return Err(format!(
                "term {} is empty (two ^ in a row, or a ^ at an end)",
                i + 1
            ));
        }
        if term.starts_with("ORDERBY") || term.starts_with("GROUPBY") {
            return Err(format!(
                "`{term}`: ordering is Snowbound's to choose; leave ORDERBY out of the filter"
            ));
        }
        let parsed = snowbound_encoded_query::parse(term);
        let understood = parsed.blocks.len() == 1
            && parsed.blocks[0].clauses.len() == 1
            && parsed.blocks[0].clauses[0].len() == 1;
        if !understood {
            return Err(format!(
                "`{term}` is not a condition (field, operator, value: `active=true`, \
                 `short_descriptionLIKEdisk`, `assignment_groupISNOTEMPTY`)"
            ));
        }
        conditions += 1;
    }
    if conditions == 0 {
        return Err("has no condition".into());
    }
    Ok(())
}

/// Who wins when both systems changed one field.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Winner {
    /// The later change wins: ServiceNow's `sys_updated_on` against Snowbound's change.
    #[default]
    Latest,
    /// Snowbound re-asserts its value on the next reconcile and says so on the link.
    Snowbound,
    /// Snowbound accepts and stops pushing the field until it changes in Snowbound.
    Servicenow,
}

impl Winner {
    pub fn as_str(self) -> &'static str {
        match self {
            Winner::Latest => "latest",
            Winner::Snowbound => "snowbound",
            Winner::Servicenow => "servicenow",
        }
    }
}

/// Per integration, for state and for severity. Integrations stored before #15 have
/// none: both default to `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WhoWins {
    pub state: Winner,
    pub severity: Winner,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn source_settings_take_the_issues_defaults() {
        let id = Uuid::nil();
        let parsed: ServiceNowSourceSettings =
            serde_json::from_value(json!({"integration_id": id})).unwrap();
        assert_eq!(parsed, ServiceNowSourceSettings::new(id));
        assert_eq!(parsed.delivery, Delivery::PushAndPoll);
        assert_eq!(parsed.poll_interval_s, 60);
        assert_eq!(
            parsed.transitions,
            Transitions {
                resolve: true,
                reopen: true,
                acknowledge: true,
                severity: false
            }
        );
        let partial: ServiceNowSourceSettings = serde_json::from_value(json!({
            "integration_id": id, "delivery": "poll", "transitions": {"severity": true}
        }))
        .unwrap();
        assert_eq!(partial.delivery, Delivery::Poll);
        assert!(partial.transitions.severity && partial.transitions.resolve);
        assert!(serde_json::from_value::<ServiceNowSourceSettings>(
            json!({"integration_id": id, "delivery": "pull"})
        )
        .is_err());
        assert_eq!(
            serde_json::to_value(Delivery::PushAndPoll).unwrap(),
            "push_and_poll"
        );
    }

    #[test]
    fn poll_interval_below_five_seconds_names_its_field() {
        let mut s = ServiceNowSourceSettings::new(Uuid::nil());
        s.poll_interval_s = 4;
        assert_eq!(
            fields(validate_servicenow_source(&s)),
            vec!["servicenow.poll_interval_s"]
        );
        s.poll_interval_s = 5;
        assert!(validate_servicenow_source(&s).is_empty());
    }

    #[test]
    fn open_filters_must_be_fully_understood() {
        for good in [
            "active=true",
            "assignment_group.name=Network^urgency<=2",
            "category=network^ORcategory=hardware^NQshort_descriptionLIKEdisk",
            "caller_idISNOTEMPTY",
            "sys_created_on>=javascript:gs.daysAgoStart(1)",
            "  ",
        ] {
            assert_eq!(check_open_filter(good), Ok(()), "{good}");
        }
        for bad in [
            "Active=true",
            "active=true^^urgency=1",
            "active=true^",
            "active=true^ORDERBYnumber",
            "short_description",
            "active=true^NQ",
            "a\u{0}=1",
        ] {
            assert!(check_open_filter(bad).is_err(), "{bad}");
        }
        let mut s = ServiceNowSourceSettings::new(Uuid::nil());
        s.open_filter = Some("urgency==1^bogus".into());
        assert_eq!(
            fields(validate_servicenow_source(&s)),
            vec!["servicenow.open_filter"]
        );
        s.open_filter = Some("   ".into());
        assert_eq!(s.open_filter(), None);
    }

    #[test]
    fn who_wins_defaults_to_latest_and_reads_old_settings() {
        assert_eq!(
            serde_json::from_value::<WhoWins>(json!({})).unwrap(),
            WhoWins {
                state: Winner::Latest,
                severity: Winner::Latest
            }
        );
        let w: WhoWins = serde_json::from_value(json!({"severity": "servicenow"})).unwrap();
        assert_eq!((w.state, w.severity), (Winner::Latest, Winner::Servicenow));
        assert!(serde_json::from_value::<WhoWins>(json!({"state": "both"})).is_err());
    }
}
