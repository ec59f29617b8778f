//! What the ServiceNow Settings page shows, computed from the integration: the mapping
//! fields with their ServiceNow choice lists, the preview of what create and resolve
//! send, and the API call log.

use std::time::Duration;

use serde_json::Value;
use snowbound_core::{
    new_id, plan_sync, FieldMap, IncidentSnapshot, IncidentStatus, Integration, ServiceNowSettings,
    Severity, SyncPlan, STATE_FIELD,
};
use snowbound_engine::desired_fields;
use snowbound_servicenow::Choice;
use snowbound_store::{ApiCallFilter, ApiCallRecord};

use crate::auth::Caller;
use crate::routes::servicenow::calls_seen_by;

use super::layout::when;
use crate::choices::{load, Loaded};
use crate::state::AppState;

/// A page must not hang on an instance that does not answer: lists missing after this
/// fall back to text inputs, and the script can load them later.
const CHOICES_DEADLINE: Duration = Duration::from_secs(5);
const CALLS_SHOWN: u32 = 50;

/// One ServiceNow choice list as the page needs it.
#[derive(Debug, Clone, Default)]
pub struct ChoiceList {
    pub choices: Vec<Choice>,
    /// Why there is no list (sys_choice unreadable, 403, empty); the page then shows
    /// a text input with this warning.
    pub warning: Option<String>,
}

async fn one(state: &AppState, integration: &Integration, field: &str) -> ChoiceList {
    match tokio::time::timeout(CHOICES_DEADLINE, load(state, integration, field, false)).await {
        Ok(Loaded { choices, warning }) => ChoiceList { choices, warning },
        Err(_) => ChoiceList {
            choices: Vec::new(),
            warning: Some(
                "ServiceNow did not answer in time; enter internal values or reload the lists"
                    .into(),
            ),
        },
    }
}

/// Choice lists of the state, close code, primary and secondary severity fields.
pub struct Lists {
    pub state: ChoiceList,
    pub close_code: ChoiceList,
    pub primary: ChoiceList,
    pub secondary: ChoiceList,
}

pub async fn lists(state: &AppState, integration: &Integration) -> Lists {
    let s = &integration.servicenow;
    let secondary = s.severity.secondary_field.as_deref().unwrap_or("impact");
    let (state_list, close_code, primary, secondary) = tokio::join!(
        one(state, integration, STATE_FIELD),
        one(state, integration, &s.close_code_field),
        one(state, integration, &s.severity.primary_field),
        one(state, integration, secondary),
    );
    Lists {
        state: state_list,
        close_code,
        primary,
        secondary,
    }
}

pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One input of the mapping sections: a dropdown from sys_choice when there is a list,
/// else a text input for the internal value.
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub help: &'static str,
    pub value: String,
    /// The ServiceNow field whose choices fill the dropdown (for the script's refresh).
    pub choice_field: Option<String>,
    pub options: Option<Vec<Opt>>,
    pub warning: Option<String>,
    pub error: Option<String>,
}

impl Field {
    pub fn text(name: &'static str, label: &'static str, help: &'static str, value: &str) -> Self {
        Field {
            name,
            label,
            help,
            value: value.to_owned(),
            choice_field: None,
            options: None,
            warning: None,
            error: None,
        }
    }

    /// A dropdown showing "label (value)"; a stored value the list lacks stays selectable,
    /// marked, so saving the page never silently changes it.
    pub fn choice(
        name: &'static str,
        label: &'static str,
        help: &'static str,
        value: &str,
        field: &str,
        list: &ChoiceList,
        empty_label: Option<&str>,
    ) -> Self {
        let mut f = Field::text(name, label, help, value);
        f.choice_field = Some(field.to_owned());
        if list.choices.is_empty() {
            f.warning = list.warning.clone();
            return f;
        }
        let mut options = Vec::new();
        if let Some(empty) = empty_label {
            options.push(Opt {
                value: String::new(),
                label: empty.to_owned(),
                selected: value.is_empty(),
            });
        }
        options.extend(list.choices.iter().map(|c| Opt {
            value: c.value.clone(),
            label: format!("{} ({})", c.label, c.value),
            selected: c.value == value,
        }));
        if !value.is_empty() && !list.choices.iter().any(|c| c.value == value) {
            options.push(Opt {
                value: value.to_owned(),
                label: format!("{value} (not in ServiceNow's list)"),
                selected: true,
            });
        }
        f.options = Some(options);
        f
    }
}

pub struct Mapping {
    pub state: Vec<Field>,
    pub resolving: Vec<Field>,
    pub primary: Vec<Field>,
    pub secondary_on: bool,
    pub secondary: Vec<Field>,
}

pub fn mapping(s: &ServiceNowSettings, lists: &Lists) -> Mapping {
    let sev = &s.severity;
    let secondary_field = sev
        .secondary_field
        .clone()
        .unwrap_or_else(|| "impact".into());
    let secondary_map = sev.secondary_map.clone().unwrap_or_default();
    let severity_fields = |prefix: &'static [&'static str; 3],
                           map: &snowbound_core::SeverityMap,
                           field: &str,
                           list: &ChoiceList| {
        [Severity::Critical, Severity::Warning, Severity::Minor]
            .iter()
            .zip(prefix.iter())
            .map(|(severity, name)| {
                let label = match severity {
                    Severity::Critical => "Critical",
                    Severity::Warning => "Warning",
                    Severity::Minor => "Minor",
                };
                Field::choice(name, label, "", map.get(*severity), field, list, None)
            })
            .collect::<Vec<_>>()
    };
    let mut primary = vec![Field::text(
        "primary_field",
        "Primary field",
        "The main ServiceNow field written from the severity. Default urgency.",
        &sev.primary_field,
    )];
    primary.extend(severity_fields(
        &["primary_critical", "primary_warning", "primary_minor"],
        &sev.primary_map,
        &sev.primary_field,
        &lists.primary,
    ));
    let mut secondary = vec![Field::text(
        "secondary_field",
        "Secondary field",
        "For example impact: with urgency and impact ServiceNow derives priority itself.",
        &secondary_field,
    )];
    secondary.extend(severity_fields(
        &["secondary_critical", "secondary_warning", "secondary_minor"],
        &secondary_map,
        &secondary_field,
        &lists.secondary,
    ));
    Mapping {
        state: vec![
            Field::choice(
                "state_open",
                "State when Open",
                "Internal value of the state field while the incident is open.",
                &s.state_open,
                STATE_FIELD,
                &lists.state,
                None,
            ),
            Field::choice(
                "state_acknowledged",
                "State when Acknowledged",
                "Optional; by default an acknowledged incident counts as open.",
                s.state_acknowledged.as_deref().unwrap_or_default(),
                STATE_FIELD,
                &lists.state,
                Some("Same as open"),
            ),
            Field::choice(
                "state_resolved",
                "State when Resolved",
                "Internal value of the state field once the incident is resolved.",
                &s.state_resolved,
                STATE_FIELD,
                &lists.state,
                None,
            ),
        ],
        resolving: vec![
            Field::text(
                "close_code_field",
                "Close code field name",
                "On incident usually close_code.",
                &s.close_code_field,
            ),
            Field::text(
                "close_notes_field",
                "Close notes field name",
                "On incident usually close_notes; data policies often require it.",
                &s.close_notes_field,
            ),
            Field::choice(
                "close_code",
                "Close code when Resolved",
                "Required. The resolution reason sent when resolving.",
                &s.close_code,
                &s.close_code_field,
                &lists.close_code,
                None,
            ),
            Field::text(
                "close_notes_default",
                "Close notes when Resolved",
                "Sent when the resolve has no comment; a resolver's comment is sent instead.",
                &s.close_notes_default,
            ),
        ],
        primary,
        secondary_on: sev.secondary_field.is_some(),
        secondary,
    }
}

/// Marks each field that a validation error names (`servicenow.close_code` →
/// `close_code`, `servicenow.severity.primary_map.minor` → `primary_minor`).
pub fn attach_errors(fields: &mut [Field], errors: &[snowbound_core::validate::FieldError]) {
    for e in errors {
        let path = e.field.trim_start_matches("servicenow.");
        let name = path.trim_start_matches("severity.").replace("_map.", "_");
        if let Some(field) = fields.iter_mut().find(|f| f.name == name) {
            field.error = Some(e.message.clone());
        }
    }
}

pub struct Request {
    pub title: &'static str,
    pub line: String,
    pub body: String,
}

/// What the engine would send for an example incident: its create, then its resolve.
/// Computed by the engine's own `desired_fields` and core's `plan_sync`.
pub fn preview(integration: &Integration, public_url: &str) -> Vec<Request> {
    let settings = &integration.servicenow;
    let mut incident = IncidentSnapshot {
        id: new_id(),
        title: "Example: checkout latency above 2 s".into(),
        description: "p95 latency of /checkout is 2.4 s.".into(),
        severity: Severity::Critical,
        status: IncidentStatus::Open,
        resolve_comment: None,
    };
    let collection = format!("/api/now/table/{}", settings.table);
    let created = desired_fields(&incident, integration, public_url);
    let mut out = Vec::new();
    if let SyncPlan::Create(fields) = plan_sync(&created, &FieldMap::new(), false, true, settings) {
        out.push(Request {
            title: "Create (when the incident is forwarded)",
            line: format!("POST {collection}"),
            body: pretty(&fields),
        });
    }
    incident.status = IncidentStatus::Resolved;
    let resolved = desired_fields(&incident, integration, public_url);
    if let SyncPlan::Update(fields) = plan_sync(&resolved, &created, true, true, settings) {
        out.push(Request {
            title: "Resolve without a comment (a comment replaces the close notes)",
            line: format!("PATCH {collection}/{{sys_id}}"),
            body: pretty(&fields),
        });
    }
    out
}

fn pretty(fields: &FieldMap) -> String {
    serde_json::to_string_pretty(fields).unwrap_or_default()
}

pub struct Call {
    pub at: String,
    pub method: String,
    pub url: String,
    pub status: String,
    pub ok: bool,
    pub duration_ms: u64,
    pub incident_id: Option<String>,
    pub error: Option<String>,
    pub request_body: Option<String>,
    pub response_body: Option<String>,
}

/// Pretty JSON when the body is JSON, else as logged.
fn body(text: Option<String>) -> Option<String> {
    text.map(|t| match serde_json::from_str::<Value>(&t) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or(t),
        Err(_) => t,
    })
}

pub async fn calls(
    state: &AppState,
    caller: &Caller,
    integration: &Integration,
) -> crate::ApiResult<Vec<Call>> {
    let records: Vec<ApiCallRecord> = calls_seen_by(
        state,
        caller,
        integration,
        ApiCallFilter {
            integration_id: Some(integration.id),
            limit: Some(CALLS_SHOWN),
            ..ApiCallFilter::default()
        },
    )
    .await?;
    Ok(records
        .into_iter()
        .map(|c| Call {
            at: when(&c.at),
            status: c
                .status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "no answer".into()),
            ok: c.status.is_some_and(|s| (200..300).contains(&s)),
            method: c.method,
            url: c.url,
            duration_ms: c.duration_ms,
            incident_id: c.incident_id.map(|i| i.to_string()),
            error: c.error,
            request_body: body(c.request_body),
            response_body: body(c.response_body),
        })
        .collect())
}
