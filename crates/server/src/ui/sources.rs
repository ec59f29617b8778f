//! A team's alert sources: create (a `servicenow` one with its settings), show the
//! ingest URL, rotate the secret, delete. Every change goes through the source service,
//! like `/api/v1/sources`; one source's own page is [`super::source_page`].

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use secrecy::SecretString;
use snowbound_core::inbound::{Delivery, ServiceNowSourceSettings, Transitions};
use snowbound_core::source::SourceKind;
use snowbound_core::{Severity, Team};
use snowbound_services::sources::{GrafanaInput, NewSource, SourceChange};
use snowbound_services::{ServiceError, ServiceResult};
use uuid::Uuid;

use super::incidents::Done;
use super::layout::{render, when, Page, UiResult};
use super::session::{FormData, Posted, UiUser};
use super::teams::team;
use super::typed::Typed;
use crate::error::ApiError;
use crate::routes::sources::view;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/teams/{id}/sources", get(list).post(create))
        .route(
            "/teams/{id}/sources/{source}",
            get(super::source_page::show),
        )
        .route("/teams/{id}/sources/{source}/rotate", post(rotate))
        .route("/teams/{id}/sources/{source}/edit", post(edit))
        .route(
            "/teams/{id}/sources/{source}/mapping",
            post(super::json_source::post_mapping),
        )
        .route("/teams/{id}/sources/{source}/delete", post(delete))
}

pub struct SourceRow {
    id: Uuid,
    name: String,
    kind: &'static str,
    severity_map: String,
    /// The map as the edit form's textarea takes it: `word=severity` lines.
    severity_lines: String,
    ingest_url: String,
    created: String,
}

#[derive(Template)]
#[template(path = "team_sources.html")]
struct SourcesPage {
    page: Page,
    team: Team,
    rows: Vec<SourceRow>,
    form: Typed,
    /// The integrations serving the team, which a `servicenow` source can read through.
    integrations: Vec<(Uuid, String)>,
}

async fn rows(state: &AppState, user: &UiUser, team_id: Uuid) -> UiResult<Vec<SourceRow>> {
    let mut rows = Vec::new();
    let caller = user.caller();
    let sources = state
        .services
        .sources()
        .list(&caller, Some(team_id))
        .await?;
    for source in sources {
        let v = view(state, source).await?;
        rows.push(SourceRow {
            id: v.id,
            name: v.name,
            kind: v.kind.as_str(),
            severity_map: v
                .severity_map
                .iter()
                .map(|(word, severity)| format!("{word} → {severity}"))
                .collect::<Vec<_>>()
                .join(", "),
            severity_lines: v
                .severity_map
                .iter()
                .map(|(word, severity)| format!("{word}={severity}"))
                .collect::<Vec<_>>()
                .join("\n"),
            // An email source's way in is its address.
            ingest_url: v.email_address.unwrap_or(v.ingest_url),
            created: when(&v.created_at),
        });
    }
    Ok(rows)
}

async fn page(
    state: &AppState,
    user: &UiUser,
    team: Team,
    form: Typed,
    status: StatusCode,
    done: Option<&str>,
) -> UiResult {
    let rows = rows(state, user, team.id).await?;
    let mut integrations: Vec<(Uuid, String)> = state
        .integrations()
        .list(&user.caller())
        .await?
        .into_iter()
        .filter(|r| r.integration.serves_team(team.id))
        .map(|r| (r.integration.id, r.integration.display_name))
        .collect();
    integrations.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(render(
        status,
        &SourcesPage {
            page: Page::new(format!("{} · Sources", team.name), "teams", user).with_notice(done),
            team,
            rows,
            form,
            integrations,
        },
    ))
}

async fn list(
    State(state): State<AppState>,
    user: UiUser,
    Path(id): Path<Uuid>,
    Query(done): Query<Done>,
) -> UiResult {
    let team = team(&state, &user, id).await?;
    let defaults = [
        ("type", "alertmanager"),
        ("servicenow.delivery", Delivery::default().as_str()),
        ("servicenow.poll_interval_s", "60"),
        ("servicenow.transitions.resolve", "1"),
        ("servicenow.transitions.reopen", "1"),
        ("servicenow.transitions.acknowledge", "1"),
    ];
    let form = Typed::new(FormData(
        defaults
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    ));
    page(
        &state,
        &user,
        team,
        form,
        StatusCode::OK,
        done.done.as_deref(),
    )
    .await
}

/// `word=severity` per line, as in Alertmanager's `severity` label values.
fn severity_lines(text: &str) -> ServiceResult<BTreeMap<String, Severity>> {
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let problem =
            |why: String| ServiceError::invalid("severity_map", format!("line {}: {why}", n + 1));
        let Some((word, severity)) = line.split_once('=') else {
            return Err(problem("write word=severity, e.g. page=critical".into()));
        };
        let severity: Severity = severity
            .trim()
            .parse()
            .map_err(|e: snowbound_core::UnknownValue| problem(e.to_string()))?;
        map.insert(word.trim().to_owned(), severity);
    }
    Ok(map)
}

/// The `servicenow.*` fields of the form, named as the API's (so errors land on them).
fn servicenow_settings(form: &FormData) -> ServiceResult<ServiceNowSourceSettings> {
    let integration_id = form
        .text("servicenow.integration_id")
        .parse::<Uuid>()
        .map_err(|_| {
            ServiceError::invalid(
                "servicenow.integration_id",
                "choose the integration to read ServiceNow through",
            )
        })?;
    let delivery = serde_json::from_value::<Delivery>(serde_json::Value::String(
        form.text("servicenow.delivery"),
    ))
    .map_err(|_| ServiceError::invalid("servicenow.delivery", "choose push, poll or both"))?;
    let poll_interval_s = form
        .text("servicenow.poll_interval_s")
        .trim()
        .parse::<u32>()
        .map_err(|_| {
            ServiceError::invalid("servicenow.poll_interval_s", "a whole number of seconds")
        })?;
    let open_filter = Some(form.text("servicenow.open_filter")).filter(|f| !f.trim().is_empty());
    let checked = |name: &str| {
        form.get(&format!("servicenow.transitions.{name}"))
            .is_some()
    };
    Ok(ServiceNowSourceSettings {
        integration_id,
        delivery,
        poll_interval_s,
        open_filter,
        transitions: Transitions {
            resolve: checked("resolve"),
            reopen: checked("reopen"),
            acknowledge: checked("acknowledge"),
            severity: checked("severity"),
        },
    })
}

/// The `grafana.*` fields of the form; blank ones are unset.
fn grafana_input(form: &FormData) -> GrafanaInput {
    let text = |name: &str| Some(form.text(name)).filter(|v| !v.trim().is_empty());
    GrafanaInput {
        hmac_secret: text("grafana.hmac_secret").map(SecretString::from),
        hmac_header: text("grafana.hmac_header"),
        timestamp_header: text("grafana.timestamp_header"),
    }
}

async fn create(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    let team = team(&state, &user, id).await?;
    let result = async {
        let kind = match form.text("type").as_str() {
            "webhook" => SourceKind::Webhook,
            "alertmanager" => SourceKind::Alertmanager,
            "servicenow" => SourceKind::Servicenow,
            "email" => SourceKind::Email,
            "grafana" => SourceKind::Grafana,
            "json" => SourceKind::Json,
            _ => {
                return Err(ServiceError::invalid(
                    "type",
                    "choose webhook, alertmanager, grafana, json, servicenow or email",
                ))
            }
        };
        let servicenow = match kind {
            SourceKind::Servicenow => Some(servicenow_settings(&form)?),
            _ => None,
        };
        let new = NewSource {
            team_id: team.id,
            kind,
            name: form.text("name"),
            severity_map: severity_lines(form.get("severity_map").unwrap_or_default())?,
            servicenow,
            email: None,
            grafana: (kind == SourceKind::Grafana).then(|| grafana_input(&form)),
            json: None,
        };
        state.services.sources().create(&user.caller(), new).await
    }
    .await
    .map_err(ApiError::from);
    match result {
        // A servicenow source's page has what the admin needs next (the business rule),
        // a json source's the mapping to build.
        Ok(v) if matches!(v.kind, SourceKind::Servicenow | SourceKind::Json) => Ok(Redirect::to(
            &format!("/teams/{}/sources/{}?done=created", team.id, v.id),
        )
        .into_response()),
        Ok(v) => Ok(Redirect::to(&format!(
            "/teams/{}/sources?done=created#source-{}",
            team.id, v.id
        ))
        .into_response()),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND => {
            let status = e.status;
            let form = Typed::refused(form, &e);
            page(&state, &user, team, form, status, None).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Renames a source or changes its severity words; a refusal shows on that source's
/// row, with what was typed lost (the row shows what is stored).
async fn edit(
    State(state): State<AppState>,
    Path((id, source)): Path<(Uuid, Uuid)>,
    Posted { user, form }: Posted,
) -> UiResult {
    let team = team(&state, &user, id).await?;
    let sources = state.services.sources();
    let caller = user.caller();
    sources.of_team(&caller, team.id, source).await?;
    let result = async {
        let change = SourceChange {
            name: Some(form.text("name")),
            severity_map: Some(severity_lines(
                form.get("severity_map").unwrap_or_default(),
            )?),
            ..SourceChange::default()
        };
        sources.update(&caller, source, change).await
    }
    .await
    .map_err(ApiError::from);
    match result {
        Ok(_) => Ok(
            Redirect::to(&format!("/teams/{id}/sources?done=saved#source-{source}"))
                .into_response(),
        ),
        Err(e) if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND => {
            let status = e.status;
            let mut refused = Typed::refused_in_words(FormData::default(), &e);
            for error in &mut refused.errors {
                error.field = format!("edit-{source}");
            }
            page(&state, &user, team, refused, status, None).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn rotate(
    State(state): State<AppState>,
    Path((id, source)): Path<(Uuid, Uuid)>,
    Posted { user, .. }: Posted,
) -> UiResult {
    let sources = state.services.sources();
    let caller = user.caller();
    // A form of one team's page must not act on another team's source.
    sources.of_team(&caller, id, source).await?;
    sources.rotate(&caller, source).await?;
    Ok(Redirect::to(&format!("/teams/{id}/sources?done=rotated#source-{source}")).into_response())
}

async fn delete(
    State(state): State<AppState>,
    Path((id, source)): Path<(Uuid, Uuid)>,
    Posted { user, .. }: Posted,
) -> UiResult {
    let sources = state.services.sources();
    let caller = user.caller();
    sources.of_team(&caller, id, source).await?;
    sources.delete(&caller, source).await?;
    Ok(Redirect::to(&format!("/teams/{id}/sources?done=deleted")).into_response())
}
