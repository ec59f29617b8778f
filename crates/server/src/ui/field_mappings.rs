//! The ServiceNow Settings page's "Field mappings and events" section (issue #17): field
//! mappings as rows (blank rows to add, a Remove box to drop, no script needed), which
//! updates are sent after create, and what happens to a Closed record. Saving goes
//! through the integration service like the API's PATCH; "Preview" shows what a chosen
//! incident would send with the values as typed, and saves nothing.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::post;
use axum::Router;
use snowbound_core::mapping::{FieldMapping, OnClosed, Updates, When};
use snowbound_core::validate::FieldError;
use snowbound_core::ServiceNowSettings;
use snowbound_services::integrations::IntegrationInput;
use uuid::Uuid;

use super::layout::UiResult;
use super::mapping_preview::incident_preview;
use super::session::{FormData, Posted};
use super::settings::{page, Shown};
use super::typed::form_errors;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/integrations/{id}/settings/sync", post(save))
}

/// Blank mapping rows under the set ones.
const BLANK_ROWS: usize = 3;

/// The matrix: form name (`up_<name>`), label.
const UPDATES: [(&str, &str); 6] = [
    ("severity", "Severity changes"),
    ("resolve", "Resolve"),
    ("reopen", "Reopen"),
    ("acknowledge", "Acknowledge"),
    ("comments", "Comments and timeline events (as work notes)"),
    ("fields", "Field mappings kept in step (when “always”)"),
];

const ON_CLOSED: [(&str, &str); 3] = [
    (
        "skip",
        "Skip: send nothing more to a Closed record (default)",
    ),
    ("reopen", "Reopen the record first, then sync as usual"),
    (
        "new_record",
        "New record when the incident reopens; other changes are skipped",
    ),
];

pub struct MappingRow {
    pub index: usize,
    pub field: String,
    pub value: String,
    pub always: bool,
    pub display: bool,
    /// Errors of `servicenow.fields[index].field` / `.value`.
    pub field_error: Option<String>,
    pub value_error: Option<String>,
}

pub struct Toggle {
    pub name: &'static str,
    pub label: &'static str,
    pub on: bool,
}

/// What the section shows: the settings as stored or typed, with the errors of a refused save.
pub struct SyncView {
    pub rows: Vec<MappingRow>,
    pub updates: Vec<Toggle>,
    pub on_closed: Vec<(&'static str, &'static str, bool)>,
    pub state_closed: String,
    pub work_notes_field: String,
    pub errors: Vec<FieldError>,
    pub error: Option<String>,
}

impl SyncView {
    pub fn new(s: &ServiceNowSettings, errors: Vec<FieldError>, error: Option<String>) -> Self {
        let m = &s.mapping;
        let row_error = |i: usize, part: &str| {
            let path = format!("servicenow.fields[{i}].{part}");
            errors
                .iter()
                .find(|e| e.field == path)
                .map(|e| e.message.clone())
        };
        let mut rows: Vec<MappingRow> = m
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| MappingRow {
                index: i,
                field: f.field.clone(),
                value: f.value.clone(),
                always: f.when == When::Always,
                display: f.display,
                field_error: row_error(i, "field"),
                value_error: row_error(i, "value"),
            })
            .collect();
        let set = rows.len();
        rows.extend((set..set + BLANK_ROWS).map(|i| MappingRow {
            index: i,
            field: String::new(),
            value: String::new(),
            always: false,
            display: false,
            field_error: None,
            value_error: None,
        }));
        let u = &m.updates;
        let on = [
            u.severity,
            u.resolve,
            u.reopen,
            u.acknowledge,
            u.comments,
            u.fields,
        ];
        let chosen = on_closed_name(m.on_closed);
        SyncView {
            rows,
            updates: UPDATES
                .iter()
                .zip(on)
                .map(|(&(name, label), on)| Toggle { name, label, on })
                .collect(),
            on_closed: ON_CLOSED
                .iter()
                .map(|&(v, l)| (v, l, v == chosen))
                .collect(),
            state_closed: m.state_closed.clone(),
            work_notes_field: m.work_notes_field.clone(),
            errors,
            error,
        }
    }

    pub fn err(&self, name: &str) -> Option<&str> {
        let path = format!("servicenow.{name}");
        self.errors
            .iter()
            .find(|e| e.field == path || e.field.starts_with(&format!("{path}.")))
            .map(|e| e.message.as_str())
    }

    /// An error about the whole list (`servicenow.fields`: too many).
    pub fn list_error(&self) -> Option<&str> {
        self.err("fields")
    }

    pub fn work_notes(&self) -> [(&'static str, bool); 2] {
        ["work_notes", "comments"].map(|f| (f, self.work_notes_field == f))
    }
}

fn on_closed_name(on_closed: OnClosed) -> &'static str {
    match on_closed {
        OnClosed::Skip => "skip",
        OnClosed::Reopen => "reopen",
        OnClosed::NewRecord => "new_record",
    }
}

/// The mapping rows as typed: in order, blank and removed rows left out, so the n-th
/// row kept is the service's `servicenow.fields[n]` and its error lands next to it.
fn typed_rows(form: &FormData) -> Vec<FieldMapping> {
    let count: usize = form.text("fm_rows").parse().unwrap_or(0);
    (0..count.min(snowbound_core::mapping::MAX_FIELD_MAPPINGS + BLANK_ROWS))
        .filter(|i| form.get(&format!("fm_remove_{i}")).is_none())
        .filter_map(|i| {
            let field = form.text(&format!("fm_field_{i}"));
            let value = form.get(&format!("fm_value_{i}")).unwrap_or_default();
            if field.is_empty() && value.is_empty() {
                return None;
            }
            Some(FieldMapping {
                field,
                value: value.to_owned(),
                when: match form.get(&format!("fm_when_{i}")) {
                    Some("always") => When::Always,
                    _ => When::Create,
                },
                display: form.get(&format!("fm_display_{i}")).is_some(),
            })
        })
        .collect()
}

/// The section as typed, on top of the stored settings.
pub fn typed_sync(current: &ServiceNowSettings, form: &FormData) -> ServiceNowSettings {
    let mut s = current.clone();
    let m = &mut s.mapping;
    m.fields = typed_rows(form);
    let on = |name: &str| form.get(&format!("up_{name}")).is_some();
    m.updates = Updates {
        severity: on("severity"),
        resolve: on("resolve"),
        reopen: on("reopen"),
        acknowledge: on("acknowledge"),
        comments: on("comments"),
        fields: on("fields"),
    };
    m.on_closed = match form.get("on_closed") {
        Some("reopen") => OnClosed::Reopen,
        Some("new_record") => OnClosed::NewRecord,
        _ => OnClosed::Skip,
    };
    m.state_closed = form.text("state_closed");
    m.work_notes_field = form.text("work_notes_field");
    s
}

async fn save(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    let caller = user.caller();
    let service = state.integrations();
    let record = service.visible(&caller, id).await?;
    let typed = typed_sync(&record.integration.servicenow, &form);
    if form.get("action") == Some("preview") {
        let mut draft = record.integration.clone();
        draft.servicenow = typed.clone();
        let preview = match form.text("preview_incident").parse::<Uuid>() {
            Ok(incident) => Some(incident_preview(&state, &caller, &draft, incident).await?),
            Err(_) => None,
        };
        let shown = Shown {
            typed: Some(typed),
            incident_preview: preview,
            ..Shown::default()
        };
        return page(&state, &user, record, shown).await;
    }
    let input = IntegrationInput {
        servicenow: typed.clone().into(),
        ..IntegrationInput::from(&record.integration)
    };
    match service
        .update(&caller, id, input)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => Ok(Redirect::to(&format!(
            "/integrations/{id}/settings?done=saved#field-mappings"
        ))
        .into_response()),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(e.into()),
        Err(e) => {
            let shown = Shown {
                typed: Some(typed),
                sync_errors: form_errors(&e),
                sync_error: Some(e.message),
                status: Some(e.status),
                ..Shown::default()
            };
            page(&state, &user, record, shown).await
        }
    }
}
