//! What a ServiceNow admin maps beyond the seed's fixed fields (issue #17): any field
//! from a template over the incident, which updates are sent after create, what to do
//! with a Closed record, and which timeline events become work notes.
//!
//! Templates are minijinja (Jinja syntax). A placeholder with no value renders empty
//! (`UndefinedBehavior::Chainable`, so `{{ attributes.missing }}` is empty too), and
//! rendering is bounded by fuel so a template cannot stall the engine.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::model::{Attributes, IncidentSnapshot, TimelineEntry};
use crate::validate::{is_servicenow_name, FieldError, NUL};

/// A mapping's template, in characters; generous for a description template.
pub const TEMPLATE_MAX_CHARS: usize = 4000;
pub const MAX_FIELD_MAPPINGS: usize = 100;
/// Instructions one render may take (minijinja's fuel): ample for any sensible
/// template, a stop for `{% for a in range(100000) %}{% for b in range(100000) %}`.
const RENDER_FUEL: u64 = 100_000;

pub const DEFAULT_STATE_CLOSED: &str = "7";
pub const DEFAULT_WORK_NOTES_FIELD: &str = "work_notes";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Written with the create only, like title and description.
    Create,
    /// Kept in step, like state.
    Always,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    pub field: String,
    /// A minijinja template over the incident (see [`MappingInput`]).
    pub value: String,
    pub when: When,
    /// The rendered value is a display value ("Network L2"), which ServiceNow resolves
    /// (`sysparm_input_display_value=true`); else it is the internal value (a sys_id).
    #[serde(default)]
    pub display: bool,
}

/// What is sent after create. All on: the seed's behaviour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Updates {
    pub severity: bool,
    pub resolve: bool,
    pub reopen: bool,
    pub acknowledge: bool,
    /// Comments and chosen timeline events as journal notes.
    pub comments: bool,
    /// `always` field mappings (and rules' fields they cover).
    pub fields: bool,
}

impl Default for Updates {
    fn default() -> Self {
        Updates {
            severity: true,
            resolve: true,
            reopen: true,
            acknowledge: true,
            comments: true,
            fields: true,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnClosed {
    /// Send nothing more to a Closed record; the link says so.
    #[default]
    Skip,
    /// Set the open state first, then sync as usual.
    Reopen,
    /// An incident that reopens gets a new record; other changes are skipped.
    NewRecord,
}

/// The mapping part of an integration's ServiceNow settings, flattened into
/// `servicenow.*`. Every field has a default, so older stored settings still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct MappingSettings {
    pub fields: Vec<FieldMapping>,
    pub updates: Updates,
    /// The state of a Closed record, which instances lock.
    pub state_closed: String,
    pub on_closed: OnClosed,
    /// The journal field notes go to: `work_notes` (agents only) or `comments`.
    pub work_notes_field: String,
}

impl Default for MappingSettings {
    fn default() -> Self {
        MappingSettings {
            fields: Vec::new(),
            updates: Updates::default(),
            state_closed: DEFAULT_STATE_CLOSED.into(),
            on_closed: OnClosed::default(),
            work_notes_field: DEFAULT_WORK_NOTES_FIELD.into(),
        }
    }
}

impl MappingSettings {
    pub fn mapping(&self, field: &str) -> Option<&FieldMapping> {
        self.fields.iter().find(|m| m.field == field)
    }
}

/// Everything a template may read, and the routing rules' fields. The engine builds it
/// from the lease (incident or frozen snapshot, attributes), the team's name and the
/// team's rules evaluated against the incident.
#[derive(Debug, Clone, Copy)]
pub struct MappingInput<'a> {
    pub incident: &'a IncidentSnapshot,
    pub team: &'a str,
    pub attributes: &'a Attributes,
    pub url: &'a str,
    /// `then.set_fields` of the matching routing rules, earlier rules winning.
    pub rule_fields: &'a BTreeMap<String, String>,
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(RENDER_FUEL));
    env
}

/// Why `template` does not parse, in minijinja's words.
pub fn check_template(template: &str) -> Result<(), String> {
    environment()
        .template_from_str(template)
        .map(|_| ())
        .map_err(|e| describe(&e))
}

/// `template` over `input`; an error only for a template that fails at render time
/// (it parsed when saved), e.g. running out of fuel.
pub fn render(template: &str, input: &MappingInput<'_>) -> Result<String, String> {
    let incident = input.incident;
    let context = minijinja::context! {
        title => incident.title,
        description => incident.description,
        severity => incident.severity.as_str(),
        status => incident.status.as_str(),
        team => input.team,
        url => input.url,
        attributes => input.attributes,
        // `none` would print as "none": a missing comment is empty like any placeholder.
        resolve_comment => incident.resolve_comment.clone().unwrap_or_default(),
    };
    environment()
        .render_str(template, context)
        .map_err(|e| describe(&e))
}

fn describe(error: &minijinja::Error) -> String {
    let mut text = error.kind().to_string();
    if let Some(detail) = error.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if let Some(line) = error.line() {
        text.push_str(&format!(" (line {line})"));
    }
    text
}

/// Fields a mapping must not take: Snowbound's own bookkeeping and what state and
/// severity mappings already own.
pub fn owned_fields(settings: &crate::ServiceNowSettings) -> Vec<&str> {
    let mut owned = vec![
        "correlation_id",
        "correlation_display",
        crate::sync::STATE_FIELD,
        "sys_id",
        "number",
        settings.close_code_field.as_str(),
        settings.close_notes_field.as_str(),
        settings.severity.primary_field.as_str(),
        settings.mapping.work_notes_field.as_str(),
    ];
    if let Some(field) = &settings.severity.secondary_field {
        owned.push(field);
    }
    owned
}

/// Problems with the mapping settings, named by their API path
/// (`servicenow.fields[2].value`).
pub fn validate_mapping(settings: &crate::ServiceNowSettings) -> Vec<FieldError> {
    let mapping = &settings.mapping;
    let mut errors = Vec::new();
    if mapping.fields.len() > MAX_FIELD_MAPPINGS {
        errors.push(FieldError::new(
            "servicenow.fields",
            format!("at most {MAX_FIELD_MAPPINGS} field mappings"),
        ));
    }
    let owned = owned_fields(settings);
    for (i, m) in mapping.fields.iter().enumerate() {
        let path = |part: &str| format!("servicenow.fields[{i}].{part}");
        if !is_servicenow_name(&m.field) {
            errors.push(FieldError::new(
                path("field"),
                format!(
                    "`{}` is not a ServiceNow name (lowercase letters, digits and _)",
                    m.field
                ),
            ));
        } else if owned.contains(&m.field.as_str()) {
            errors.push(FieldError::new(
                path("field"),
                format!(
                    "`{}` is set by Snowbound itself (state, severity, close or journal settings)",
                    m.field
                ),
            ));
        } else if mapping.fields[..i].iter().any(|o| o.field == m.field) {
            errors.push(FieldError::new(path("field"), "is mapped twice"));
        }
        if m.value.contains(NUL) {
            errors.push(FieldError::new(
                path("value"),
                "must not contain the NUL character (U+0000)",
            ));
        } else if m.value.chars().count() > TEMPLATE_MAX_CHARS {
            errors.push(FieldError::new(
                path("value"),
                format!("is longer than {TEMPLATE_MAX_CHARS} characters"),
            ));
        } else if let Err(message) = check_template(&m.value) {
            errors.push(FieldError::new(
                path("value"),
                format!("is not a valid template: {message}"),
            ));
        }
    }
    if mapping.state_closed.trim().is_empty() {
        errors.push(FieldError::new("servicenow.state_closed", "is required"));
    } else if mapping.state_closed == settings.state_open
        || mapping.state_closed == settings.state_resolved
    {
        errors.push(FieldError::new(
            "servicenow.state_closed",
            "must differ from state_open and state_resolved",
        ));
    }
    if !matches!(mapping.work_notes_field.as_str(), "work_notes" | "comments") {
        errors.push(FieldError::new(
            "servicenow.work_notes_field",
            "must be `work_notes` or `comments`",
        ));
    }
    errors
}

/// Timeline kinds written to the record's journal, each once.
pub const JOURNAL_KINDS: [&str; 5] = [
    "comment",
    "acknowledged",
    "severity_changed",
    "alert_fired",
    "forwarded",
];

/// The journal note for a timeline entry, or `None` when its kind is not journaled.
/// The text is also what the engine looks for in `sys_journal_field` after an
/// ambiguous write, so it depends on the entry alone.
pub fn journal_note(entry: &TimelineEntry) -> Option<String> {
    let at = entry.at.format("%Y-%m-%d %H:%M:%S UTC");
    let text = match entry.kind.as_str() {
        "comment" => format!("{} commented: {}", entry.actor, entry.detail),
        "acknowledged" => format!("Acknowledged by {}", entry.actor),
        "severity_changed" => format!("{} by {}", capitalised(&entry.detail), entry.actor),
        "alert_fired" => format!("Alert fired again: {}", entry.detail),
        "forwarded" => format!("{} by {}", capitalised(&entry.detail), entry.actor),
        _ => return None,
    };
    Some(format!("[Snowbound {at}] {text}"))
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{IncidentStatus, ServiceNowSettings, Severity};
    use uuid::Uuid;

    fn snapshot() -> IncidentSnapshot {
        IncidentSnapshot {
            id: Uuid::nil(),
            title: "Disk full".into(),
            description: "95%".into(),
            severity: Severity::Critical,
            status: IncidentStatus::Open,
            resolve_comment: None,
        }
    }

    fn settings() -> ServiceNowSettings {
        ServiceNowSettings::with_defaults(
            "https://acme.service-now.com".into(),
            "snowbound".into(),
            "Solution provided".into(),
        )
    }

    fn mapping(field: &str, value: &str) -> FieldMapping {
        FieldMapping {
            field: field.into(),
            value: value.into(),
            when: When::Create,
            display: false,
        }
    }

    #[test]
    fn templates_see_the_incident_and_missing_values_render_empty() {
        let incident = snapshot();
        let attributes: Attributes = [("instance".to_string(), "db-1".to_string())].into();
        let input = MappingInput {
            incident: &incident,
            team: "Platform",
            attributes: &attributes,
            url: "http://sb/i/0",
            rule_fields: &BTreeMap::new(),
        };
        let out = render(
            "{{ team }}/{{ severity }}/{{ status }}/{{ attributes.instance }}/\
             {{ attributes['instance'] }}/[{{ attributes.nope }}][{{ attributes.nope.deeper }}]\
             [{{ resolve_comment }}][{{ nothing }}]{{ url }}",
            &input,
        )
        .unwrap();
        assert_eq!(
            out,
            "Platform/critical/open/db-1/db-1/[][][][]http://sb/i/0"
        );
        assert_eq!(render("{{ title | upper }}", &input).unwrap(), "DISK FULL");
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let incident = snapshot();
        let input = MappingInput {
            incident: &incident,
            team: "",
            attributes: &Attributes::new(),
            url: "",
            rule_fields: &BTreeMap::new(),
        };
        let template =
            "{% for a in range(10000) %}{% for b in range(10000) %}x{% endfor %}{% endfor %}";
        assert!(render(template, &input).is_err());
    }

    #[test]
    fn an_invalid_template_is_refused_with_the_mapping_named() {
        let mut s = settings();
        s.mapping.fields = vec![
            mapping("cmdb_ci", "{{ attributes.instance }}"),
            mapping("category", "network"),
            mapping("assignment_group", "{{ team "),
        ];
        let errors = validate_mapping(&s);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "servicenow.fields[2].value");
        assert!(errors[0].message.contains("not a valid template"));
    }

    #[test]
    fn mappings_may_not_take_owned_fields_or_repeat_and_names_are_checked() {
        let mut s = settings();
        s.mapping.fields = vec![
            mapping("state", "1"),
            mapping("urgency", "1"),
            mapping("Bad Name", "x"),
            mapping("category", "a"),
            mapping("category", "b"),
            mapping("short_description", "{{ title }}"),
        ];
        s.mapping.work_notes_field = "description".into();
        let fields: Vec<String> = validate_mapping(&s).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "servicenow.fields[0].field",
                "servicenow.fields[1].field",
                "servicenow.fields[2].field",
                "servicenow.fields[4].field",
                "servicenow.work_notes_field",
            ]
        );
    }

    #[test]
    fn settings_stored_before_mappings_read_with_todays_behaviour() {
        let mut json = serde_json::to_value(settings()).unwrap();
        for key in [
            "fields",
            "updates",
            "state_closed",
            "on_closed",
            "work_notes_field",
        ] {
            json.as_object_mut().unwrap().remove(key);
        }
        let read: ServiceNowSettings = serde_json::from_value(json).unwrap();
        assert_eq!(read, settings());
        assert_eq!(read.mapping.updates, Updates::default());
        assert_eq!(read.mapping.on_closed, OnClosed::Skip);
        assert_eq!(read.mapping.state_closed, "7");
        let partial: Updates = serde_json::from_str(r#"{"severity": false}"#).unwrap();
        assert!(!partial.severity && partial.resolve && partial.fields);
        let on: OnClosed = serde_json::from_str(r#""new_record""#).unwrap();
        assert_eq!(on, OnClosed::NewRecord);
    }

    #[test]
    fn journal_notes_name_who_and_skip_other_kinds() {
        let entry = |kind: &str, actor: &str, detail: &str| TimelineEntry {
            at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            actor: actor.into(),
            kind: kind.into(),
            detail: detail.into(),
        };
        assert_eq!(
            journal_note(&entry("acknowledged", "alice", "acknowledged")).unwrap(),
            "[Snowbound 1970-01-01 00:00:00 UTC] Acknowledged by alice"
        );
        assert!(journal_note(&entry("comment", "bob", "on it"))
            .unwrap()
            .ends_with("bob commented: on it"));
        assert!(journal_note(&entry("title_changed", "bob", "x")).is_none());
    }
}
