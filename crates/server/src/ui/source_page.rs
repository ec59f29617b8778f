//! One source's page: its ingest URL and, for a `servicenow` source, its settings, the
//! business rule to paste into ServiceNow and how polling goes (last poll, records
//! seen, error, watermark) — what `GET /api/v1/sources/{id}` answers. A `grafana`
//! source shows its signature settings; a `json` source its kept payloads and mapping
//! form ([`super::json_source`]).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use snowbound_core::inbound::business_rule::BusinessRule;
use snowbound_core::inbound::Transitions;
use snowbound_core::Team;
use uuid::Uuid;

use super::incidents::Done;
use super::json_source::{form_of, PayloadRow, PreviewBlock};
use super::layout::{render, when, Page, UiResult};
use super::session::UiUser;
use super::teams::team;
use super::typed::Typed;
use crate::routes::sources::GrafanaView;
use crate::routes::sources::{view, PollView};
use crate::state::AppState;
use snowbound_core::source::SourceKind;

#[derive(Template)]
#[template(path = "source.html")]
struct SourcePage {
    page: Page,
    team: Team,
    id: Uuid,
    name: String,
    kind: &'static str,
    ingest_url: String,
    created: String,
    servicenow: Option<ServiceNowView>,
    grafana: Option<GrafanaView>,
    json: Option<JsonSection>,
}

/// The json part of the page: kept payloads, the mapping form and its preview.
struct JsonSection {
    payloads: Vec<PayloadRow>,
    form: Typed,
    preview: Option<PreviewBlock>,
    has_mapping: bool,
}

/// The mapping form as typed (after a Preview or a refused Save).
pub(super) struct JsonForm {
    pub form: Typed,
    pub preview: Option<PreviewBlock>,
}

struct ServiceNowView {
    integration_id: Uuid,
    integration: String,
    delivery: &'static str,
    poll_interval_s: u32,
    open_filter: Option<String>,
    transitions: Transitions,
    rule: BusinessRule,
    /// `None`: the source does not poll.
    poll: Option<PollRow>,
}

struct PollRow {
    last_poll: Option<String>,
    last_records: Option<i64>,
    last_error: Option<String>,
    last_success: Option<String>,
    watermark: Option<String>,
    next_poll: String,
}

impl From<PollView> for PollRow {
    fn from(p: PollView) -> Self {
        PollRow {
            last_poll: p.last_poll_at.as_ref().map(when),
            last_records: p.last_records,
            last_error: p.last_error,
            last_success: p.last_success_at.as_ref().map(when),
            watermark: p.watermark.as_ref().map(when),
            next_poll: when(&p.next_poll_at),
        }
    }
}

pub(super) async fn show(
    State(state): State<AppState>,
    user: UiUser,
    Path((id, source)): Path<(Uuid, Uuid)>,
    Query(done): Query<Done>,
) -> UiResult {
    render_page(
        &state,
        &user,
        id,
        source,
        None,
        StatusCode::OK,
        done.done.as_deref(),
    )
    .await
}

pub(super) async fn render_page(
    state: &AppState,
    user: &UiUser,
    id: Uuid,
    source: Uuid,
    json_form: Option<JsonForm>,
    status: StatusCode,
    done: Option<&str>,
) -> UiResult {
    let state = state.clone();
    let team = team(&state, user, id).await?;
    // A team's page must not show another team's source.
    let found = state
        .services
        .sources()
        .of_team(&user.caller(), team.id, source)
        .await?;
    let json = match found.kind {
        SourceKind::Json => {
            let payloads = state
                .services
                .sources()
                .payloads(&user.caller(), found.id)
                .await?;
            let JsonForm { form, preview } = json_form.unwrap_or_else(|| JsonForm {
                form: Typed::new(form_of(&found.json.clone().unwrap_or_default())),
                preview: None,
            });
            Some(JsonSection {
                payloads: payloads
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| PayloadRow::new(i, p))
                    .collect(),
                form,
                preview,
                has_mapping: found.json.is_some(),
            })
        }
        _ => None,
    };
    let v = view(&state, found).await?;
    let servicenow = match (v.servicenow, v.business_rule) {
        (Some(settings), Some(rule)) => {
            let integration = state
                .store
                .get_integration(settings.integration_id)
                .await?
                .integration
                .display_name;
            Some(ServiceNowView {
                integration_id: settings.integration_id,
                integration,
                delivery: settings.delivery.as_str(),
                poll_interval_s: settings.poll_interval_s,
                open_filter: settings.open_filter().map(str::to_owned),
                transitions: settings.transitions,
                rule,
                poll: v.poll.flatten().map(PollRow::from),
            })
        }
        _ => None,
    };
    let page = SourcePage {
        page: Page::new(format!("{} · {}", team.name, v.name), "teams", user).with_notice(done),
        grafana: v.grafana,
        json,
        id: v.id,
        team,
        name: v.name,
        kind: v.kind.as_str(),
        // An email source's way in is its address.
        ingest_url: v.email_address.unwrap_or(v.ingest_url),
        created: when(&v.created_at),
        servicenow,
    };
    Ok(render(status, &page))
}
