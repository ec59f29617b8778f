//! Validation of integration settings: every problem names the field at fault, in the
//! dotted path of the HTTP API (`servicenow.close_code`).

use serde::Serialize;

use crate::auth::validate_auth;
use crate::instance_url::{parse_instance_url, InstancePolicy};
use crate::model::{ServiceNowSettings, SeverityMap};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Longest strings Snowbound stores, in characters (not bytes). The API refuses longer
/// ones with 422 naming the field; alert sources that cannot fix their body have
/// theirs cut instead (see [`crate::ingest`]).
pub mod limits {
    pub const TITLE: usize = 1000;
    pub const DESCRIPTION: usize = 20_000;
    pub const COMMENT: usize = 4000;
    pub const NAME: usize = 200;
    pub const ATTRIBUTE_NAME: usize = 200;
    pub const ATTRIBUTE_VALUE: usize = 2000;
    pub const SEVERITY_WORD: usize = 100;
    pub const DEDUP_KEY: usize = 500;
    pub const EMAIL: usize = 254;
}

/// The character PostgreSQL cannot hold in text (SQLite can): refused everywhere, so
/// both backends keep exactly the same data.
pub const NUL: char = '\u{0}';

/// Why `value` cannot be stored as text of at most `max_chars` characters.
pub fn check_text(value: &str, max_chars: usize) -> Result<(), String> {
    if value.contains(NUL) {
        return Err("must not contain the NUL character (U+0000)".into());
    }
    if value.chars().count() > max_chars {
        return Err(format!("is longer than {max_chars} characters"));
    }
    Ok(())
}

/// `check_text` as a [`FieldError`] naming `field`.
pub fn check_field(field: &str, value: &str, max_chars: usize) -> Result<(), FieldError> {
    check_text(value, max_chars).map_err(|message| FieldError::new(field, message))
}

/// NUL replaced by U+FFFD, for text from senders that cannot be asked to fix it.
pub fn replace_nul(value: String) -> String {
    if value.contains(NUL) {
        value.replace(NUL, "\u{FFFD}")
    } else {
        value
    }
}

/// The first `max_chars` characters of `value`.
pub fn cut(value: String, max_chars: usize) -> String {
    match value.char_indices().nth(max_chars) {
        Some((end, _)) => value[..end].to_owned(),
        None => value,
    }
}

/// ServiceNow table and column names: lowercase letters, digits and underscores
/// (`u_` custom and `x_vendor_app_` scoped names included).
pub fn is_servicenow_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `policy` is the server's rule for local instances (see [`crate::instance_url`]).
pub fn validate_servicenow(
    settings: &ServiceNowSettings,
    policy: InstancePolicy,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(FieldError::new(format!("servicenow.{field}"), message))
    };

    if let Err(message) = parse_instance_url(&settings.instance_url, policy) {
        err("instance_url", message);
    }
    errors.extend(validate_auth(&settings.auth));
    let mut err = |field: &str, message: String| {
        errors.push(FieldError::new(format!("servicenow.{field}"), message))
    };
    for (field, value) in [
        ("table", &settings.table),
        ("close_code_field", &settings.close_code_field),
        ("close_notes_field", &settings.close_notes_field),
        ("severity.primary_field", &settings.severity.primary_field),
    ] {
        if !is_servicenow_name(value) {
            err(
                field,
                format!("`{value}` is not a ServiceNow name (lowercase letters, digits and _)"),
            );
        }
    }
    for (field, value) in [
        ("state_open", &settings.state_open),
        ("state_resolved", &settings.state_resolved),
        ("close_code", &settings.close_code),
    ] {
        if value.trim().is_empty() {
            err(field, "is required".into());
        }
    }
    if settings
        .state_acknowledged
        .as_deref()
        .is_some_and(|s| s.trim().is_empty())
    {
        err(
            "state_acknowledged",
            "must not be empty; leave it out to treat acknowledged as open".into(),
        );
    }
    if settings.close_code_field == settings.close_notes_field {
        err(
            "close_notes_field",
            "must differ from close_code_field".into(),
        );
    }
    check_map(
        &mut err,
        "severity.primary_map",
        &settings.severity.primary_map,
    );

    let severity = &settings.severity;
    match (&severity.secondary_field, &severity.secondary_map) {
        (Some(field), map) => {
            if !is_servicenow_name(field) {
                err(
                    "severity.secondary_field",
                    format!("`{field}` is not a ServiceNow name (lowercase letters, digits and _)"),
                );
            } else if *field == severity.primary_field {
                err(
                    "severity.secondary_field",
                    "must differ from the primary field".into(),
                );
            }
            match map {
                Some(map) => check_map(&mut err, "severity.secondary_map", map),
                None => err(
                    "severity.secondary_map",
                    "is required when a secondary field is set".into(),
                ),
            }
        }
        (None, Some(_)) => err(
            "severity.secondary_field",
            "is required when a secondary map is set".into(),
        ),
        (None, None) => {}
    }
    errors.extend(crate::mapping::validate_mapping(settings));
    errors
}

fn check_map(err: &mut impl FnMut(&str, String), path: &str, map: &SeverityMap) {
    for (severity, value) in [
        ("critical", &map.critical),
        ("warning", &map.warning),
        ("minor", &map.minor),
    ] {
        if value.trim().is_empty() {
            err(
                &format!("{path}.{severity}"),
                "is required: every severity needs a value".into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ServiceNowSettings {
        ServiceNowSettings::with_defaults(
            "https://acme.service-now.com".into(),
            "snowbound".into(),
            "Solution provided".into(),
        )
    }

    fn fields(errors: Vec<FieldError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn text_checks_refuse_nul_and_count_characters() {
        assert!(check_text("Zürich 💥", 8).is_ok());
        assert!(check_text("Zürich 💥", 7).is_err());
        assert!(check_text("a\u{0}b", 100).unwrap_err().contains("NUL"));
        assert_eq!(replace_nul("a\u{0}b".into()), "a\u{FFFD}b");
        assert_eq!(cut("Zürich".into(), 2), "Zü");
        assert_eq!(cut("ab".into(), 5), "ab");
    }

    #[test]
    fn defaults_with_a_close_code_are_valid() {
        assert!(validate_servicenow(&valid(), InstancePolicy::PUBLIC_ONLY).is_empty());
    }

    #[test]
    fn each_problem_names_its_field() {
        let mut s = valid();
        s.close_code = " ".into();
        s.table = "Incident; drop".into();
        s.severity.primary_map.warning = String::new();
        s.severity.secondary_field = Some("impact".into());
        assert_eq!(
            fields(validate_servicenow(&s, InstancePolicy::PUBLIC_ONLY)),
            vec![
                "servicenow.table",
                "servicenow.close_code",
                "servicenow.severity.primary_map.warning",
                "servicenow.severity.secondary_map",
            ]
        );
    }
}
