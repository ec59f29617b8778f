//! Incident screens: the list with filters, a new-incident form, and the detail page
//! where an on-call engineer changes severity, acknowledges, resolves, reopens and
//! forwards. Every action goes through the incident service, like the API's.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use snowbound_core::inbound::{LinkNote, NoteKind};
use snowbound_core::{Attributes, Incident, IncidentStatus, Severity, Team};
use snowbound_services::incidents::IncidentQuery;
use snowbound_store::IntegrationRecord;
use uuid::Uuid;

use super::layout::{ok, render, when, Page, UiResult};
use super::session::{Posted, UiUser};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::incident_view;
use snowbound_services::{Change, NewIncident, ServiceError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/incidents", get(list).post(create))
        .route("/incidents/new", get(new_form))
        .route("/incidents/{id}", get(detail))
        .route("/incidents/{id}/severity", post(severity))
        .route("/incidents/{id}/acknowledge", post(acknowledge))
        .route("/incidents/{id}/resolve", post(resolve))
        .route("/incidents/{id}/reopen", post(reopen))
        .route("/incidents/{id}/forward", post(forward))
        .route("/incidents/{id}/comments", post(comment))
        .route("/incidents/{id}/links/{integration_id}/retry", post(retry))
        .route(
            "/incidents/{id}/links/{integration_id}/recreate",
            post(recreate),
        )
}

/// Teams the user may see, by name.
pub async fn visible_teams(state: &AppState, caller: &Caller) -> UiResult<Vec<Team>> {
    Ok(state.services.teams().list(caller).await?)
}

pub struct Row {
    id: Uuid,
    title: String,
    severity: &'static str,
    status: &'static str,
    team: String,
    opened: String,
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct ListPage {
    page: Page,
    rows: Vec<Row>,
    teams: Vec<Team>,
    status: String,
    severity: String,
    team: String,
    q: String,
    /// The next page's address, when more incidents follow.
    older: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    severity: String,
    #[serde(default)]
    team: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    before: String,
}

const PAGE_SIZE: u32 = 200;

async fn list(
    State(state): State<AppState>,
    user: UiUser,
    Query(query): Query<ListQuery>,
) -> UiResult {
    let caller = user.caller();
    let teams = visible_teams(&state, &caller).await?;
    let filter = IncidentQuery {
        status: query.status.parse::<IncidentStatus>().ok(),
        severity: query.severity.parse::<Severity>().ok(),
        team_id: query.team.parse().ok(),
        limit: Some(PAGE_SIZE),
        q: Some(query.q.clone()),
        before: Some(query.before.clone()).filter(|b| !b.is_empty()),
    };
    let names: HashMap<Uuid, String> = teams.iter().map(|t| (t.id, t.name.clone())).collect();
    let page = state.incidents().list(&caller, filter).await?;
    let older = page.next.map(|next| {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("status", &query.status)
            .append_pair("severity", &query.severity)
            .append_pair("team", &query.team)
            .append_pair("q", &query.q)
            .append_pair("before", &next)
            .finish();
        format!("/incidents?{query}")
    });
    let rows = page
        .incidents
        .into_iter()
        .map(|i| Row {
            id: i.id,
            title: i.title,
            severity: i.severity.as_str(),
            status: i.status.as_str(),
            team: names.get(&i.team_id).cloned().unwrap_or_default(),
            opened: when(&i.created_at),
        })
        .collect();
    Ok(ok(&ListPage {
        page: Page::new("Incidents", "incidents", &user),
        rows,
        teams,
        status: query.status,
        severity: query.severity,
        team: query.team,
        q: query.q,
        older,
    }))
}

#[derive(Template)]
#[template(path = "incident_new.html")]
struct NewPage {
    page: Page,
    teams: Vec<Team>,
    error: Option<String>,
    title: String,
    description: String,
    team: String,
    severity: String,
}

async fn new_form(State(state): State<AppState>, user: UiUser) -> UiResult {
    let teams = visible_teams(&state, &user.caller()).await?;
    Ok(ok(&NewPage {
        page: Page::new("New incident", "incidents", &user),
        teams,
        error: None,
        title: String::new(),
        description: String::new(),
        team: String::new(),
        severity: "warning".into(),
    }))
}

async fn create(State(state): State<AppState>, Posted { user, form }: Posted) -> UiResult {
    let caller = user.caller();
    let severity = form.text("severity").parse::<Severity>();
    let team_id = form.text("team_id").parse::<Uuid>();
    let result = match (team_id, severity) {
        (Ok(team_id), Ok(severity)) => {
            let new = NewIncident {
                team_id,
                title: form.text("title"),
                description: form.get("description").unwrap_or_default().to_owned(),
                severity,
                attributes: Attributes::new(),
            };
            state.incidents().create(&caller, new).await
        }
        (Err(_), _) => Err(ServiceError::invalid("team_id", "choose a team")),
        (_, Err(_)) => Err(ServiceError::invalid("severity", "choose a severity")),
    };
    match result {
        Ok(incident) => {
            Ok(Redirect::to(&format!("/incidents/{}?done=created", incident.id)).into_response())
        }
        Err(e) => {
            let e = ApiError::from(e);
            let teams = visible_teams(&state, &caller).await?;
            Ok(render(
                e.status,
                &NewPage {
                    page: Page::new("New incident", "incidents", &user),
                    teams,
                    error: Some(e.message),
                    title: form.text("title"),
                    description: form.get("description").unwrap_or_default().to_owned(),
                    team: form.text("team_id"),
                    severity: form.text("severity"),
                },
            ))
        }
    }
}

pub struct LinkRow {
    integration_id: Uuid,
    integration: String,
    number: Option<String>,
    record_url: Option<String>,
    state: &'static str,
    last_error: Option<String>,
    last_synced: Option<String>,
    record_gone: bool,
    notes: Vec<NoteRow>,
}

/// A field ServiceNow and Snowbound disagree on, as the inbound direction last saw it.
pub struct NoteRow {
    field: String,
    /// "drift" or "re-asserted".
    kind: &'static str,
    servicenow_value: String,
    snowbound_value: String,
    by: String,
    at: String,
    reason: String,
}

impl From<LinkNote> for NoteRow {
    fn from(note: LinkNote) -> Self {
        NoteRow {
            kind: match note.kind {
                NoteKind::Drift => "drift",
                NoteKind::Reasserted => "re-asserted",
            },
            at: when(&note.at),
            field: note.field,
            servicenow_value: note.servicenow_value,
            snowbound_value: note.snowbound_value,
            by: note.by,
            reason: note.reason,
        }
    }
}

pub struct Entry {
    at: String,
    actor: String,
    detail: String,
}

pub struct Target {
    id: Uuid,
    name: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct DetailPage {
    page: Page,
    incident: Incident,
    team: String,
    opened: String,
    timeline: Vec<Entry>,
    links: Vec<LinkRow>,
    targets: Vec<Target>,
    error: Option<String>,
}

/// `{instance_url}/nav_to.do?uri={table}.do?sys_id={sys_id}`: opens the record inside
/// ServiceNow's frame, as agents are used to.
fn record_url(record: &IntegrationRecord, sys_id: &str) -> String {
    let settings = &record.integration.servicenow;
    format!(
        "{}/nav_to.do?uri={}.do?sys_id={}",
        settings.instance_url.trim_end_matches('/'),
        settings.table,
        sys_id
    )
}

async fn detail_page(
    state: &AppState,
    user: &UiUser,
    incident: Incident,
    error: Option<ApiError>,
    done: Option<&str>,
) -> UiResult {
    let caller = user.caller();
    let view = incident_view(state, incident).await?;
    let integrations: HashMap<Uuid, IntegrationRecord> = state
        .store
        .list_integrations()
        .await?
        .into_iter()
        .map(|r| (r.integration.id, r))
        .collect();
    let team = state
        .store
        .get_team(view.incident.team_id)
        .await
        .map(|t| t.name)
        .unwrap_or_default();
    let links = view
        .links
        .into_iter()
        .map(|link| LinkRow {
            record_url: match (&link.sys_id, integrations.get(&link.integration_id)) {
                (Some(sys_id), Some(record)) => Some(record_url(record, sys_id)),
                _ => None,
            },
            integration_id: link.integration_id,
            integration: link.integration_name,
            number: link.number,
            state: link.state,
            last_error: link.last_error,
            last_synced: link.last_synced_at.as_ref().map(when),
            record_gone: link.record_gone,
            notes: link.notes.into_iter().map(NoteRow::from).collect(),
        })
        .collect();
    let mut targets: Vec<Target> = integrations
        .values()
        .filter(|r| {
            caller.sees_integration(&r.integration)
                && r.integration.serves_team(view.incident.team_id)
        })
        .map(|r| Target {
            id: r.integration.id,
            name: r.integration.display_name.clone(),
        })
        .collect();
    targets.sort_by(|a, b| a.name.cmp(&b.name));
    let timeline = view
        .timeline
        .into_iter()
        .rev()
        .map(|e| Entry {
            at: when(&e.at),
            actor: e.actor,
            detail: e.detail,
        })
        .collect();
    let status = error.as_ref().map(|e| e.status).unwrap_or(StatusCode::OK);
    let page = Page::new(view.incident.title.clone(), "incidents", user).with_notice(done);
    Ok(render(
        status,
        &DetailPage {
            page,
            opened: when(&view.incident.created_at),
            incident: view.incident,
            team,
            timeline,
            links,
            targets,
            error: error.map(|e| e.message),
        },
    ))
}

#[derive(Deserialize, Default)]
pub struct Done {
    pub done: Option<String>,
}

async fn detail(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<Uuid>,
    Query(done): Query<Done>,
) -> UiResult {
    let incident = state.incidents().visible(&user.caller(), id).await?;
    detail_page(&state, &user, incident, None, done.done.as_deref()).await
}

/// Runs an action; success redirects to the detail page (so a reload does not repeat
/// it), failure shows the page again with the reason.
async fn act<F, Fut>(state: &AppState, user: &UiUser, id: Uuid, done: &str, action: F) -> UiResult
where
    F: FnOnce(Caller) -> Fut,
    Fut: std::future::Future<Output = Result<Incident, ServiceError>>,
{
    match action(user.caller()).await.map_err(ApiError::from) {
        Ok(_) => Ok(Redirect::to(&format!("/incidents/{id}?done={done}")).into_response()),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(e.into()),
        Err(e) => {
            let incident = state.incidents().visible(&user.caller(), id).await?;
            detail_page(state, user, incident, Some(e), None).await
        }
    }
}

fn change(state: &AppState, id: Uuid, change: Change) -> impl FnOnce(Caller) -> ChangeFut {
    let service = state.incidents();
    move |caller| Box::pin(async move { service.change(&caller, id, change).await })
}

type ChangeFut =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Incident, ServiceError>> + Send>>;

async fn severity(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    let severity = match form.text("severity").parse::<Severity>() {
        Ok(s) => s,
        Err(e) => return Err(ApiError::invalid_field("severity", e.to_string()).into()),
    };
    let edit = Change::Edit {
        severity: Some(severity),
        title: None,
        description: None,
    };
    act(&state, &user, id, "severity", change(&state, id, edit)).await
}

async fn acknowledge(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, .. }: Posted,
) -> UiResult {
    act(
        &state,
        &user,
        id,
        "acknowledged",
        change(&state, id, Change::Acknowledge),
    )
    .await
}

async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    let comment = Some(form.get("comment").unwrap_or_default().to_owned());
    act(
        &state,
        &user,
        id,
        "resolved",
        change(&state, id, Change::Resolve { comment }),
    )
    .await
}

async fn reopen(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, .. }: Posted,
) -> UiResult {
    act(
        &state,
        &user,
        id,
        "reopened",
        change(&state, id, Change::Reopen),
    )
    .await
}

/// The comment box: the same service as `POST /api/v1/incidents/{id}/comments`.
async fn comment(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    let service = state.incidents();
    let text = form.get("text").unwrap_or_default().to_owned();
    act(&state, &user, id, "commented", |caller| async move {
        service.comment(&caller, id, &text).await
    })
    .await
}

async fn forward(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> Response {
    let service = state.incidents();
    let target = form.text("integration_id").parse::<Uuid>();
    let result = act(&state, &user, id, "forwarded", |caller| async move {
        match target {
            Ok(integration) => service.forward(&caller, id, integration).await,
            Err(_) => Err(ServiceError::invalid(
                "integration_id",
                "choose an integration to forward to",
            )),
        }
    })
    .await;
    result.into_response()
}

async fn recreate(
    State(state): State<AppState>,
    Path((id, integration_id)): Path<(Uuid, Uuid)>,
    Posted { user, .. }: Posted,
) -> UiResult {
    let service = state.incidents();
    act(&state, &user, id, "recreate", |caller| async move {
        service.recreate_link(&caller, id, integration_id).await
    })
    .await
}

async fn retry(
    State(state): State<AppState>,
    Path((id, integration_id)): Path<(Uuid, Uuid)>,
    Posted { user, .. }: Posted,
) -> UiResult {
    let service = state.incidents();
    act(&state, &user, id, "retry", |caller| async move {
        service.retry_link(&caller, id, integration_id).await
    })
    .await
}
