//! ServiceNow-born incidents: a record matching the source's `open_filter` that no
//! Snowbound incident holds opens one, linked to the integration with the record adopted.

use crate::inbound::{is_resolved_state, severity_of, SeenRecord};
use crate::model::{Attributes, ServiceNowSettings, Severity};
use crate::sync::{CORRELATION_DISPLAY, STATE_FIELD};
use crate::validate::{cut, limits, replace_nul};

pub const ASSIGNMENT_GROUP: &str = "assignment_group";
pub const CALLER: &str = "caller_id";
pub const CI: &str = "cmdb_ci";

/// Attribute names of a ServiceNow-born incident (routing rules can match them).
pub const ATTR_NUMBER: &str = "servicenow.number";
pub const ATTR_SYS_ID: &str = "servicenow.sys_id";
pub const ATTR_ASSIGNMENT_GROUP: &str = "servicenow.assignment_group";
pub const ATTR_CALLER: &str = "servicenow.caller";
pub const ATTR_CI: &str = "servicenow.cmdb_ci";

/// The incident to open, in the source's team, linked to the integration with the
/// record adopted (`sys_id`, `number`). The link's `pushed` starts as the whole
/// `servicenow_fields` of the new incident and its applied `sys_mod_count` as the
/// record's, so outbound neither creates a second record nor rewrites the agent's
/// values until something changes in Snowbound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BornIncident {
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub attributes: Attributes,
    /// `sys_created_by`, else `sys_updated_by`: who opened it in ServiceNow.
    pub by: String,
    pub sys_id: String,
    pub number: String,
    pub mod_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Born {
    Open(BornIncident),
    /// Outside the source's `open_filter` (or the source has none).
    NotInFilter,
    /// A Snowbound incident holds the record already.
    Held,
    /// Created by a Snowbound (`correlation_display`) whose link is gone or that is
    /// another installation: adopting it would track one ticket twice.
    Snowbounds,
    /// Already resolved, closed or canceled: nothing to work on.
    Ended,
}

/// `matches_filter` is ServiceNow's own answer (the record came from a query carrying
/// the filter), never a local evaluation: reference and dot-walked conditions only the
/// instance can evaluate.
pub fn born_incident(
    record: &SeenRecord,
    matches_filter: bool,
    held: bool,
    settings: &ServiceNowSettings,
) -> Born {
    if held {
        return Born::Held;
    }
    if !matches_filter {
        return Born::NotInFilter;
    }
    if record.value("correlation_display") == Some(CORRELATION_DISPLAY) {
        return Born::Snowbounds;
    }
    if record
        .value(STATE_FIELD)
        .is_some_and(|state| is_resolved_state(state, settings))
    {
        return Born::Ended;
    }
    let text = |field: &str, max: usize| {
        cut(
            replace_nul(record.value(field).unwrap_or_default().trim().to_owned()),
            max,
        )
    };
    let mut title = text("short_description", limits::TITLE);
    if title.is_empty() {
        title = format!("ServiceNow {}", record.number);
    }
    let severity = record
        .value(&settings.severity.primary_field)
        .and_then(|value| severity_of(value, settings))
        .unwrap_or(Severity::Minor);
    let mut attributes = Attributes::new();
    let mut put = |name: &str, value: &str| {
        if !value.trim().is_empty() {
            attributes.insert(
                name.to_owned(),
                cut(
                    replace_nul(value.trim().to_owned()),
                    limits::ATTRIBUTE_VALUE,
                ),
            );
        }
    };
    put(ATTR_NUMBER, &record.number);
    put(ATTR_SYS_ID, &record.sys_id);
    for (field, name) in [
        (ASSIGNMENT_GROUP, ATTR_ASSIGNMENT_GROUP),
        (CALLER, ATTR_CALLER),
        (CI, ATTR_CI),
    ] {
        // A sys_id means nothing to a person: display values only.
        put(name, record.display_value(field).unwrap_or_default());
    }
    let by = record
        .value("sys_created_by")
        .filter(|b| !b.trim().is_empty())
        .unwrap_or(&record.updated_by)
        .to_owned();
    Born::Open(BornIncident {
        title,
        description: text("description", limits::DESCRIPTION),
        severity,
        attributes,
        by,
        sys_id: record.sys_id.clone(),
        number: record.number.clone(),
        mod_count: record.mod_count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::FieldMap;

    fn settings() -> ServiceNowSettings {
        ServiceNowSettings::with_defaults("https://x".into(), "sb".into(), "Solved".into())
    }

    fn map(pairs: &[(&str, &str)]) -> FieldMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn record(extra: &[(&str, &str)]) -> SeenRecord {
        let mut values = map(&[
            ("sys_id", "abc123"),
            ("number", "INC0010042"),
            ("sys_updated_on", "2026-12-01 10:00:00"),
            ("sys_updated_by", "agent"),
            ("sys_created_by", "agent"),
            ("sys_mod_count", "0"),
            ("state", "1"),
            ("urgency", "1"),
            ("short_description", "Payroll down"),
            ("assignment_group", "g1"),
            ("caller_id", "u1"),
            ("cmdb_ci", ""),
        ]);
        values.extend(map(extra));
        let display = map(&[
            ("assignment_group", "Network"),
            ("caller_id", "Abel Tuter"),
            ("cmdb_ci", ""),
        ]);
        SeenRecord::new(values, display).unwrap()
    }

    #[test]
    fn a_record_in_the_filter_held_by_no_incident_opens_one() {
        let Born::Open(born) = born_incident(&record(&[]), true, false, &settings()) else {
            panic!("opens");
        };
        assert_eq!(born.title, "Payroll down");
        assert_eq!(born.severity, Severity::Critical);
        assert_eq!(born.by, "agent");
        assert_eq!(
            (born.sys_id.as_str(), born.number.as_str()),
            ("abc123", "INC0010042")
        );
        let attrs: Vec<(&str, &str)> = born
            .attributes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            attrs,
            vec![
                ("servicenow.assignment_group", "Network"),
                ("servicenow.caller", "Abel Tuter"),
                ("servicenow.number", "INC0010042"),
                ("servicenow.sys_id", "abc123"),
            ]
        );
    }

    #[test]
    fn outside_the_filter_held_ours_or_ended_opens_none() {
        let s = settings();
        assert_eq!(
            born_incident(&record(&[]), false, false, &s),
            Born::NotInFilter
        );
        assert_eq!(born_incident(&record(&[]), true, true, &s), Born::Held);
        assert_eq!(
            born_incident(
                &record(&[("correlation_display", "Snowbound")]),
                true,
                false,
                &s
            ),
            Born::Snowbounds
        );
        for state in ["6", "7", "8"] {
            assert_eq!(
                born_incident(&record(&[("state", state)]), true, false, &s),
                Born::Ended
            );
        }
    }

    #[test]
    fn unmapped_urgency_is_minor_and_an_empty_title_uses_the_number() {
        let r = record(&[("urgency", "9"), ("short_description", "  ")]);
        let Born::Open(born) = born_incident(&r, true, false, &settings()) else {
            panic!("opens");
        };
        assert_eq!(born.severity, Severity::Minor);
        assert_eq!(born.title, "ServiceNow INC0010042");
    }
}
