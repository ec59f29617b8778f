//! The ServiceNow Settings page: Authorization with Test Connection, State, Resolving and
//! Severity mapping, a preview of what is sent, and the API call log. Saving goes through
//! the integration service, like the API's PATCH; Test Connection and choice lists through
//! the API's functions.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use snowbound_core::validate::{is_servicenow_name, FieldError};
use snowbound_core::{ServiceNowSettings, SeverityMap};
use snowbound_servicenow::TestReport;
use snowbound_services::integrations::IntegrationInput;
use snowbound_store::IntegrationRecord;
use uuid::Uuid;

use super::auth_fields::{typed_auth, AuthView};
use super::field_mappings::SyncView;
use super::layout::{render, Page, UiResult};
use super::mapping_preview::{incident_preview, preview_choices, IncidentPreview};
use super::session::{FormData, Posted, UiUser};
use super::settings_view::{attach_errors, calls, lists, mapping, preview, Call, Mapping, Request};
use super::typed::form_errors;
use super::who_wins::{WinnerChoice, WINNERS};
use crate::choices::load;
use crate::error::ApiError;
use crate::routes::servicenow::run_test_connection;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/integrations/{id}/settings", get(show))
        .route(
            "/integrations/{id}/settings/authorization",
            post(save_authorization),
        )
        .route("/integrations/{id}/settings/mappings", post(save_mappings))
        .route("/integrations/{id}/test-connection", post(test_connection))
        .route("/integrations/{id}/choices", get(choices))
        .route("/docs/servicenow-setup", get(setup_guide))
}

/// The ServiceNow admin's guide, built in so the link works offline and matches the
/// running version.
const SETUP_GUIDE: &str = include_str!("../../../../docs/SERVICENOW_SETUP.md");

#[derive(Template)]
#[template(path = "setup_guide.html")]
struct SetupGuidePage {
    page: Page,
    text: &'static str,
}

async fn setup_guide(user: UiUser) -> UiResult {
    let view = SetupGuidePage {
        page: Page::new("ServiceNow setup", "integrations", &user),
        text: SETUP_GUIDE,
    };
    Ok(render(StatusCode::OK, &view))
}

/// Notes the page lists at most.
const STANDING_NOTES: u32 = 50;

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    page: Page,
    tab_id: String,
    tab: &'static str,
    name: String,
    problem: Option<String>,
    s: ServiceNowSettings,
    authz: AuthView,
    auth_errors: Vec<FieldError>,
    auth_error: Option<String>,
    report: Option<TestReport>,
    mapping: Mapping,
    mapping_error: Option<String>,
    preview: Vec<Request>,
    sync: SyncView,
    /// Incidents the preview may be computed for, and the one shown.
    preview_incidents: Vec<(Uuid, String)>,
    incident_preview: Option<IncidentPreview>,
    calls: Vec<Call>,
    winners: &'static [WinnerChoice],
    who_wins_errors: Vec<FieldError>,
    who_wins_error: Option<String>,
    /// Drift and re-assertions standing on the integration's links (incidents the
    /// user may open only).
    standing: Vec<snowbound_store::StandingNote>,
}

impl SettingsPage {
    fn auth_err(&self, field: &str) -> Option<&str> {
        let path = format!("servicenow.{field}");
        self.auth_errors
            .iter()
            .find(|e| e.field == path)
            .map(|e| e.message.as_str())
    }

    fn who_wins_err(&self, field: &str) -> Option<&str> {
        let path = format!("servicenow.who_wins.{field}");
        self.who_wins_errors
            .iter()
            .find(|e| e.field == path)
            .map(|e| e.message.as_str())
    }
}

/// What to show besides the stored settings: typed values after a failed save, the
/// errors, a Test Connection report.
#[derive(Default)]
pub(super) struct Shown {
    pub typed: Option<ServiceNowSettings>,
    pub auth_errors: Vec<FieldError>,
    pub auth_error: Option<String>,
    pub mapping_errors: Vec<FieldError>,
    pub mapping_error: Option<String>,
    pub report: Option<TestReport>,
    pub status: Option<StatusCode>,
    pub done: Option<String>,
    pub sync_errors: Vec<FieldError>,
    pub sync_error: Option<String>,
    pub incident_preview: Option<IncidentPreview>,
    pub who_wins_errors: Vec<FieldError>,
    pub who_wins_error: Option<String>,
}

pub(super) async fn page(
    state: &AppState,
    user: &UiUser,
    record: IntegrationRecord,
    shown: Shown,
) -> UiResult {
    let integration = &record.integration;
    let lists = lists(state, integration).await;
    let s = shown
        .typed
        .unwrap_or_else(|| integration.servicenow.clone());
    let mut mapping = mapping(&s, &lists);
    for fields in [
        &mut mapping.state,
        &mut mapping.resolving,
        &mut mapping.primary,
        &mut mapping.secondary,
    ] {
        attach_errors(fields, &shown.mapping_errors);
    }
    let health = &record.health;
    let problem = match (&health.failing, health.paused_until) {
        (Some(failing), _) => Some(format!("ServiceNow refuses the credentials: {failing}")),
        (None, Some(until)) => Some(format!(
            "Paused by ServiceNow's rate limit until {} UTC",
            super::layout::when(&until)
        )),
        _ => None,
    };
    let caller = user.caller();
    let preview_incidents = preview_choices(state, &caller, integration).await?;
    let standing: Vec<_> = state
        .store
        .standing_notes(integration.id, STANDING_NOTES)
        .await?
        .into_iter()
        .filter(|note| caller.sees_team(note.team_id))
        .collect();
    let sync = SyncView::new(&s, shown.sync_errors, shown.sync_error);
    let view = SettingsPage {
        page: Page::new(
            format!("{} · ServiceNow Settings", integration.display_name),
            "integrations",
            user,
        )
        .with_notice(shown.done.as_deref()),
        tab_id: integration.id.to_string(),
        tab: "settings",
        name: integration.display_name.clone(),
        problem,
        preview: preview(integration, state.public_url()),
        calls: calls(state, &user.caller(), integration).await?,
        authz: AuthView::stored(s.auth.clone(), &record).with_errors(shown.auth_errors.clone()),
        s,
        auth_errors: shown.auth_errors,
        auth_error: shown.auth_error,
        report: shown.report,
        mapping,
        mapping_error: shown.mapping_error,
        sync,
        preview_incidents,
        incident_preview: shown.incident_preview,
        winners: &WINNERS,
        who_wins_errors: shown.who_wins_errors,
        who_wins_error: shown.who_wins_error,
        standing,
    };
    Ok(render(shown.status.unwrap_or(StatusCode::OK), &view))
}

#[derive(Deserialize, Default)]
struct ShowQuery {
    done: Option<String>,
    /// An incident to preview with the saved settings.
    preview: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<Uuid>,
    Query(query): Query<ShowQuery>,
) -> UiResult {
    let caller = user.caller();
    let record = state.integrations().visible(&caller, id).await?;
    let preview = match query.preview.as_deref().map(str::parse::<Uuid>) {
        Some(Ok(incident)) => {
            Some(incident_preview(&state, &caller, &record.integration, incident).await?)
        }
        _ => None,
    };
    let shown = Shown {
        done: query.done,
        incident_preview: preview,
        ..Shown::default()
    };
    page(&state, &user, record, shown).await
}

async fn save_authorization(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    let caller = user.caller();
    let service = state.integrations();
    // "Show fields" (the type changed without JavaScript): re-render for the new type,
    // keeping what was typed, and save nothing.
    if form.get("show_type").is_some() {
        let record = service.owned(&caller, id).await?;
        let mut typed = record.integration.servicenow.clone();
        typed.instance_url = form.text("instance_url");
        typed.auth = typed_auth(&form).settings().trimmed();
        typed.table = form.text("table");
        let shown = Shown {
            typed: Some(typed),
            ..Shown::default()
        };
        return page(&state, &user, record, shown).await;
    }
    let result = async {
        let current = service.owned(&caller, id).await?.integration;
        let mut input = IntegrationInput::from(&current);
        input.servicenow.instance_url = form.text("instance_url");
        input.servicenow.table = form.text("table");
        input.servicenow.auth = Some(typed_auth(&form));
        service.update(&caller, id, input).await
    }
    .await;
    match result.map_err(ApiError::from) {
        Ok(_) => Ok(saved(id)),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(e.into()),
        Err(e) => {
            let record = state.integrations().visible(&caller, id).await?;
            let mut typed = record.integration.servicenow.clone();
            typed.instance_url = form.text("instance_url");
            typed.auth = typed_auth(&form).settings().trimmed();
            typed.table = form.text("table");
            let shown = Shown {
                typed: Some(typed),
                auth_errors: form_errors(&e),
                auth_error: Some(e.message),
                status: Some(e.status),
                ..Shown::default()
            };
            page(&state, &user, record, shown).await
        }
    }
}

fn saved(id: Uuid) -> Response {
    Redirect::to(&format!("/integrations/{id}/settings?done=saved")).into_response()
}

fn severity_map(form: &FormData, prefix: &str) -> SeverityMap {
    SeverityMap {
        critical: form.text(&format!("{prefix}_critical")),
        warning: form.text(&format!("{prefix}_warning")),
        minor: form.text(&format!("{prefix}_minor")),
    }
}

/// The mapping sections as typed, on top of the stored settings.
fn typed_mapping(current: &ServiceNowSettings, form: &FormData) -> ServiceNowSettings {
    let mut s = current.clone();
    s.state_open = form.text("state_open");
    s.state_acknowledged = Some(form.text("state_acknowledged")).filter(|v| !v.is_empty());
    s.state_resolved = form.text("state_resolved");
    s.close_code_field = form.text("close_code_field");
    s.close_notes_field = form.text("close_notes_field");
    s.close_code = form.text("close_code");
    s.close_notes_default = form
        .get("close_notes_default")
        .unwrap_or_default()
        .to_owned();
    s.severity.primary_field = form.text("primary_field");
    s.severity.primary_map = severity_map(form, "primary");
    let secondary_on = form.get("secondary_enabled").is_some();
    s.severity.secondary_field = secondary_on.then(|| form.text("secondary_field"));
    s.severity.secondary_map = secondary_on.then(|| severity_map(form, "secondary"));
    s
}

async fn save_mappings(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    let caller = user.caller();
    let record = state.integrations().visible(&caller, id).await?;
    let typed = typed_mapping(&record.integration.servicenow, &form);
    let input = IntegrationInput {
        servicenow: typed.clone().into(),
        ..IntegrationInput::from(&record.integration)
    };
    match state
        .integrations()
        .update(&caller, id, input)
        .await
        .map_err(ApiError::from)
    {
        Ok(_) => Ok(saved(id)),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(e.into()),
        Err(e) => {
            let shown = Shown {
                typed: Some(typed),
                mapping_errors: form_errors(&e),
                mapping_error: Some(e.message),
                status: Some(e.status),
                ..Shown::default()
            };
            page(&state, &user, record, shown).await
        }
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// With JavaScript the page asks for JSON and shows the checks in place; without, the
/// form POST re-renders the page with the results.
async fn test_connection(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Posted { user, .. }: Posted,
) -> UiResult {
    let record = state.integrations().visible(&user.caller(), id).await?;
    let report = run_test_connection(&state, &record.integration).await;
    if wants_json(&headers) {
        return Ok(Json(report).into_response());
    }
    let record = state.integrations().visible(&user.caller(), id).await?;
    let shown = Shown {
        report: Some(report),
        ..Shown::default()
    };
    page(&state, &user, record, shown).await
}

#[derive(Deserialize)]
struct ChoicesQuery {
    field: String,
    #[serde(default)]
    refresh: bool,
}

/// The script's "Reload lists": the same loader as `GET /api/v1/integrations/{id}/choices`.
async fn choices(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<Uuid>,
    Query(query): Query<ChoicesQuery>,
) -> UiResult {
    if !is_servicenow_name(&query.field) {
        return Err(ApiError::invalid_field("field", "is not a ServiceNow name").into());
    }
    let integration = state
        .integrations()
        .visible(&user.caller(), id)
        .await?
        .integration;
    let loaded = load(&state, &integration, &query.field, query.refresh).await;
    Ok(Json(json!({
        "field": query.field,
        "choices": loaded.choices,
        "warning": loaded.warning,
    }))
    .into_response())
}
