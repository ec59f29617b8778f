//! Outbound Integrations: the list with health, "+ Create" and the Edit tab. Creating and
//! editing go through the integration service, like `POST`/`PATCH /api/v1/integrations`.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use snowbound_core::validate::FieldError;
use snowbound_core::{ForwardingMode, ServiceNowAuth, Team};
use snowbound_services::integrations::{IntegrationInput, IntegrationType, ServiceNowInput};
use snowbound_services::{ServiceError, ServiceResult};
use uuid::Uuid;

use super::auth_fields::{typed_auth, without_secrets, AuthView};
use super::incidents::{visible_teams, Done};
use super::layout::{ok, render, when, Page, UiResult};
use super::session::{FormData, Posted, UiUser};
use super::typed::form_errors;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/integrations", get(list).post(create))
        .route("/integrations/new", get(new_form))
        .route("/integrations/{id}/edit", get(edit_form).post(edit))
}

pub struct Row {
    id: Uuid,
    name: String,
    teams: String,
    forwarding: &'static str,
    last_success: String,
    failing_links: i64,
    problem: Option<String>,
}

#[derive(Template)]
#[template(path = "integrations.html")]
struct ListPage {
    page: Page,
    rows: Vec<Row>,
}

pub fn mode_label(mode: ForwardingMode) -> &'static str {
    match mode {
        ForwardingMode::AlwaysAfterForwarding => "Always After Forwarding",
        ForwardingMode::Always => "Always",
        ForwardingMode::OnlyOnForwarding => "Only On Forwarding",
    }
}

async fn list(State(state): State<AppState>, user: UiUser, Query(done): Query<Done>) -> UiResult {
    let caller = user.caller();
    let names: HashMap<Uuid, String> = state
        .store
        .list_teams()
        .await?
        .into_iter()
        .map(|t| (t.id, t.name))
        .collect();
    let rows = state
        .integrations()
        .list(&caller)
        .await?
        .into_iter()
        .map(|r| {
            let health = &r.health;
            let problem = match (&health.failing, health.paused_until) {
                (Some(failing), _) => Some(format!("Failing: {failing}")),
                (None, Some(until)) => Some(format!("Paused until {} (rate limit)", when(&until))),
                _ => None,
            };
            Row {
                id: r.integration.id,
                name: r.integration.display_name.clone(),
                teams: r
                    .integration
                    .all_team_ids()
                    .iter()
                    .filter_map(|t| names.get(t).cloned())
                    .collect::<Vec<_>>()
                    .join(", "),
                forwarding: mode_label(r.integration.forwarding),
                last_success: health
                    .last_success_at
                    .as_ref()
                    .map(when)
                    .unwrap_or_else(|| "never".into()),
                failing_links: health.failing_links,
                problem,
            }
        })
        .collect();
    Ok(ok(&ListPage {
        page: Page::new("Outbound Integrations", "integrations", &user)
            .with_notice(done.done.as_deref()),
        rows,
    }))
}

/// The create form and the Edit tab: one template, re-shown with the values as typed and
/// each field's error next to it.
#[derive(Template)]
#[template(path = "integration_form.html")]
struct FormPage {
    page: Page,
    /// `None` = create.
    id: Option<Uuid>,
    teams: Vec<Team>,
    values: FormData,
    errors: Vec<FieldError>,
    error: Option<String>,
    /// The Authorization fields: `Some` on create only.
    authz: Option<AuthView>,
}

impl FormPage {
    fn v(&self, name: &str) -> String {
        self.values.get(name).unwrap_or_default().to_owned()
    }

    fn is(&self, name: &str, value: &str) -> bool {
        self.values.all(name).contains(&value)
    }

    fn err(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    fn modes(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        FORWARDING_MODES.to_vec()
    }
}

/// The seed's words for each mode.
const FORWARDING_MODES: [(&str, &str, &str); 3] = [
    (
        "always_after_forwarding",
        "Always After Forwarding (default)",
        "ServiceNow incidents are created when users manually forward incidents or when \
         routing rules forward them automatically; every later change is sent too.",
    ),
    (
        "always",
        "Always",
        "Forward all incidents of the integration's teams to ServiceNow unless excluded by \
         routing rules.",
    ),
    (
        "only_on_forwarding",
        "Only On Forwarding",
        "Forward a snapshot of the current incident to ServiceNow in the moment a user \
         forwards it or a routing rule does. No incident updates are sent afterwards.",
    ),
];

async fn new_form(State(state): State<AppState>, user: UiUser) -> UiResult {
    let teams = visible_teams(&state, &user.caller()).await?;
    let values = FormData(vec![
        ("forwarding".into(), "always_after_forwarding".into()),
        ("table".into(), "incident".into()),
        ("close_code".into(), "Solution provided".into()),
    ]);
    Ok(ok(&FormPage {
        page: Page::new("Create Outbound Integration", "integrations", &user),
        id: None,
        teams,
        values,
        errors: Vec::new(),
        error: None,
        authz: Some(AuthView::new(ServiceNowAuth::Basic {
            username: String::new(),
        })),
    }))
}

/// A field as typed (the service trims what it must).
fn raw(form: &FormData, name: &str) -> String {
    form.get(name).unwrap_or_default().to_owned()
}

fn forwarding(form: &FormData) -> ServiceResult<ForwardingMode> {
    form.text("forwarding")
        .parse()
        .map_err(|e: snowbound_core::UnknownValue| {
            ServiceError::invalid("forwarding", e.to_string())
        })
}

fn root_team(form: &FormData) -> Uuid {
    form.text("root_team_id").parse().unwrap_or_default()
}

/// The create form as a command: what it asks for, the seed's defaults for the rest.
fn new_integration(form: &FormData) -> ServiceResult<IntegrationInput> {
    let mut servicenow: ServiceNowInput = snowbound_core::ServiceNowSettings::with_defaults(
        raw(form, "instance_url"),
        raw(form, "username"),
        raw(form, "close_code"),
    )
    .into();
    servicenow.table = raw(form, "table");
    servicenow.auth = Some(typed_auth(form));
    Ok(IntegrationInput {
        display_name: raw(form, "display_name"),
        root_team_id: root_team(form),
        team_ids: form.ids("team_ids"),
        kind: IntegrationType::Servicenow,
        forwarding: forwarding(form)?,
        servicenow,
    })
}

async fn create(State(state): State<AppState>, Posted { user, form }: Posted) -> UiResult {
    let caller = user.caller();
    // "Show fields" (the type changed without JavaScript): the form again for the new
    // type, keeping what was typed, and nothing created.
    if form.get("show_type").is_some() {
        return Ok(render(
            StatusCode::OK,
            &create_page(&state, &user, form, Vec::new(), None).await?,
        ));
    }
    let result = match new_integration(&form) {
        Ok(input) => state.integrations().create(&caller, input).await,
        Err(e) => Err(e),
    };
    match result.map_err(ApiError::from) {
        Ok(record) => Ok(Redirect::to(&format!(
            "/integrations/{}/settings?done=created",
            record.integration.id
        ))
        .into_response()),
        Err(e) => Ok(render(
            e.status,
            &create_page(&state, &user, form, form_errors(&e), Some(e.message)).await?,
        )),
    }
}

/// The create form re-shown with what was typed, except the secrets: they are never
/// sent back to the browser.
async fn create_page(
    state: &AppState,
    user: &UiUser,
    form: FormData,
    errors: Vec<FieldError>,
    error: Option<String>,
) -> UiResult<FormPage> {
    let authz = AuthView::new(typed_auth(&form).settings().trimmed()).with_errors(errors.clone());
    Ok(FormPage {
        page: Page::new("Create Outbound Integration", "integrations", user),
        id: None,
        teams: visible_teams(state, &user.caller()).await?,
        values: without_secrets(form),
        errors,
        error,
        authz: Some(authz),
    })
}

async fn edit_form(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<Uuid>,
    Query(done): Query<Done>,
) -> UiResult {
    let caller = user.caller();
    let integration = state.integrations().visible(&caller, id).await?.integration;
    let mut values = vec![
        ("display_name".to_owned(), integration.display_name.clone()),
        (
            "root_team_id".to_owned(),
            integration.root_team_id.to_string(),
        ),
        (
            "forwarding".to_owned(),
            integration.forwarding.as_str().to_owned(),
        ),
    ];
    values.extend(
        integration
            .team_ids
            .iter()
            .map(|t| ("team_ids".to_owned(), t.to_string())),
    );
    Ok(ok(&FormPage {
        page: Page::new(integration.display_name.clone(), "integrations", &user)
            .with_notice(done.done.as_deref()),
        id: Some(id),
        teams: visible_teams(&state, &caller).await?,
        values: FormData(values),
        errors: Vec::new(),
        error: None,
        authz: None,
    }))
}

async fn edit(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    let caller = user.caller();
    let service = state.integrations();
    let result = async {
        let current = service.owned(&caller, id).await?.integration;
        let input = IntegrationInput {
            display_name: raw(&form, "display_name"),
            root_team_id: root_team(&form),
            team_ids: form.ids("team_ids"),
            forwarding: forwarding(&form)?,
            ..IntegrationInput::from(&current)
        };
        service.update(&caller, id, input).await
    }
    .await;
    match result.map_err(ApiError::from) {
        Ok(_) => Ok(Redirect::to(&format!("/integrations/{id}/edit?done=saved")).into_response()),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(e.into()),
        Err(e) => Ok(render(
            e.status,
            &FormPage {
                page: Page::new("Edit integration", "integrations", &user),
                id: Some(id),
                teams: visible_teams(&state, &caller).await?,
                errors: form_errors(&e),
                error: Some(e.message),
                values: without_secrets(form),
                authz: None,
            },
        )),
    }
}
