//! A team's alert sources: create, show the ingest URL, rotate the secret, delete.
//! Every change goes through the source service, like `/api/v1/sources`.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use axum::Router;
use snowbound_core::source::SourceKind;
use snowbound_core::{Severity, Team};
use snowbound_services::sources::NewSource;
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
        .route("/teams/{id}/sources/{source}/rotate", post(rotate))
        .route("/teams/{id}/sources/{source}/delete", post(delete))
}

pub struct SourceRow {
    id: Uuid,
    name: String,
    kind: &'static str,
    severity_map: String,
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
            ingest_url: v.ingest_url,
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
    Ok(render(
        status,
        &SourcesPage {
            page: Page::new(format!("{} · Sources", team.name), "teams", user).with_notice(done),
            team,
            rows,
            form,
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
    let form = Typed::new(FormData(vec![("type".into(), "alertmanager".into())]));
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
            _ => {
                return Err(ServiceError::invalid(
                    "type",
                    "choose webhook or alertmanager",
                ))
            }
        };
        let new = NewSource {
            team_id: team.id,
            kind,
            name: form.text("name"),
            severity_map: severity_lines(form.get("severity_map").unwrap_or_default())?,
            servicenow: None,
        };
        state.services.sources().create(&user.caller(), new).await
    }
    .await
    .map_err(ApiError::from);
    match result {
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
