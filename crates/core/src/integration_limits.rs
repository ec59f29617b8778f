//! Length limits of an integration's free-text settings. Values are sent to ServiceNow,
//! which cuts or refuses what its columns cannot hold, and shown on every page of the
//! integration; refusing them at save time names the field instead of parking links later.

use crate::model::{ServiceNowSettings, SeverityMap};
use crate::validate::FieldError;

/// As for team, source and rule names.
pub const DISPLAY_NAME_MAX_CHARS: usize = 200;
/// ServiceNow choice values (`close_code`, `state`, `impact`, `urgency`) are 40 long.
pub const CHOICE_VALUE_MAX_CHARS: usize = 40;
/// `incident.close_notes` holds 4000.
pub const CLOSE_NOTES_MAX_CHARS: usize = 4000;
/// A URL longer than this is no instance address.
pub const INSTANCE_URL_MAX_CHARS: usize = 2048;
/// `sys_user.user_name` holds 100.
pub const USERNAME_MAX_CHARS: usize = 100;

/// The display name, when longer than allowed.
pub fn check_display_name(display_name: &str) -> Option<FieldError> {
    too_long("display_name", display_name, DISPLAY_NAME_MAX_CHARS)
}

/// Every setting longer than its column, named by its path in the HTTP API.
pub fn check_servicenow_lengths(settings: &ServiceNowSettings) -> Vec<FieldError> {
    let mut checks: Vec<(String, &str, usize)> = vec![
        (
            "instance_url".into(),
            &settings.instance_url,
            INSTANCE_URL_MAX_CHARS,
        ),
        (
            "state_open".into(),
            &settings.state_open,
            CHOICE_VALUE_MAX_CHARS,
        ),
        (
            "state_resolved".into(),
            &settings.state_resolved,
            CHOICE_VALUE_MAX_CHARS,
        ),
        (
            "close_code".into(),
            &settings.close_code,
            CHOICE_VALUE_MAX_CHARS,
        ),
        (
            "close_notes_default".into(),
            &settings.close_notes_default,
            CLOSE_NOTES_MAX_CHARS,
        ),
    ];
    if let Some(acknowledged) = &settings.state_acknowledged {
        checks.push((
            "state_acknowledged".into(),
            acknowledged,
            CHOICE_VALUE_MAX_CHARS,
        ));
    }
    push_map(
        &mut checks,
        "severity.primary_map",
        &settings.severity.primary_map,
    );
    if let Some(map) = &settings.severity.secondary_map {
        push_map(&mut checks, "severity.secondary_map", map);
    }
    checks
        .into_iter()
        .filter_map(|(field, value, max)| too_long(&format!("servicenow.{field}"), value, max))
        .collect()
}

fn push_map<'a>(checks: &mut Vec<(String, &'a str, usize)>, path: &str, map: &'a SeverityMap) {
    for (severity, value) in [
        ("critical", &map.critical),
        ("warning", &map.warning),
        ("minor", &map.minor),
    ] {
        checks.push((format!("{path}.{severity}"), value, CHOICE_VALUE_MAX_CHARS));
    }
}

fn too_long(field: &str, value: &str, max: usize) -> Option<FieldError> {
    (value.chars().count() > max)
        .then(|| FieldError::new(field, format!("is longer than {max} characters")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ServiceNowSettings {
        ServiceNowSettings::with_defaults(
            "https://acme.service-now.com".into(),
            "snowbound".into(),
            "Solution provided".into(),
        )
    }

    #[test]
    fn defaults_fit() {
        assert!(check_servicenow_lengths(&settings()).is_empty());
    }

    #[test]
    fn limits_count_characters_and_name_the_field() {
        let mut s = settings();
        s.close_code = "é".repeat(40);
        assert!(check_servicenow_lengths(&s).is_empty());
        s.close_code = "é".repeat(41);
        s.severity.secondary_map = Some(SeverityMap {
            minor: "9".repeat(41),
            ..SeverityMap::default()
        });
        let fields: Vec<String> = check_servicenow_lengths(&s)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "servicenow.close_code",
                "servicenow.severity.secondary_map.minor"
            ]
        );
        assert!(check_display_name(&"x".repeat(200)).is_none());
        assert_eq!(
            check_display_name(&"x".repeat(201)).unwrap().field,
            "display_name"
        );
    }
}
