//! Outbound Integrations: the list with health, "+ Create" and the Edit tab. Creating and
//! editing go through the same functions as `POST`/`PATCH /api/v1/integrations`.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use snowbound_core::validate::FieldError;
use snowbound_core::{ForwardingMode, Team};
use uuid::Uuid;

use super::incidents::{visible_teams, Done};
use super::layout::{ok, render, when, Page, UiResult};
use super::session::{FormData, Posted, UiUser};
use crate::error::ApiError;
use crate::routes::integrations::{create_integration, update_integration, visible};
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
        .store
        .list_integrations()
        .await?
        .into_iter()
        .filter(|r| caller.sees_integration(&r.integration))
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

pub(super) fn form_errors(e: &ApiError) -> Vec<FieldError> {
    if e.fields.is_empty() {
        e.field
            .iter()
            .map(|f| FieldError::new(f.clone(), e.message.clone()))
            .collect()
    } else {
        e.fields.clone()
    }
}

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
    }))
}

fn opt(form: &FormData, name: &str) -> Value {
    Value::String(form.get(name).unwrap_or_default().to_owned())
}

async fn create(State(state): State<AppState>, Posted { user, form }: Posted) -> UiResult {
    let caller = user.caller();
    let body = json!({
        "display_name": opt(&form, "display_name"),
        "root_team_id": form.text("root_team_id").parse::<Uuid>().unwrap_or_default(),
        "team_ids": form.ids("team_ids"),
        "type": "servicenow",
        "forwarding": form.text("forwarding"),
        "servicenow": {
            "instance_url": opt(&form, "instance_url"),
            "username": opt(&form, "username"),
            "password": opt(&form, "password"),
            "table": opt(&form, "table"),
            "close_code": opt(&form, "close_code"),
        },
    });
    let result = match crate::extract::from_value(body) {
        Ok(input) => create_integration(&state, &caller, input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(record) => Ok(Redirect::to(&format!(
            "/integrations/{}/settings?done=created",
            record.integration.id
        ))
        .into_response()),
        Err(e) => {
            let teams = visible_teams(&state, &caller).await?;
            let mut values = form;
            values.0.retain(|(k, _)| k != "password");
            Ok(render(
                e.status,
                &FormPage {
                    page: Page::new("Create Outbound Integration", "integrations", &user),
                    id: None,
                    teams,
                    errors: form_errors(&e),
                    error: Some(e.message),
                    values,
                },
            ))
        }
    }
}

async fn edit_form(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<Uuid>,
    Query(done): Query<Done>,
) -> UiResult {
    let caller = user.caller();
    let integration = visible(&state, &caller, id).await?.integration;
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
    }))
}

async fn edit(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    let caller = user.caller();
    let patch = json!({
        "display_name": opt(&form, "display_name"),
        "root_team_id": form.text("root_team_id").parse::<Uuid>().unwrap_or_default(),
        "team_ids": form.ids("team_ids"),
        "forwarding": form.text("forwarding"),
    });
    match update_integration(&state, &caller, id, patch).await {
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
                values: form,
            },
        )),
    }
}
