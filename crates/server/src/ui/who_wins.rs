//! The "Who wins" section of the ServiceNow Settings page: for state and for severity,
//! which system's change stands when both changed the field (issue #15). Saved through
//! the integration service, like `PATCH /api/v1/integrations/{id}` with
//! `servicenow.who_wins`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::post;
use axum::Router;
use snowbound_core::inbound::Winner;
use snowbound_core::validate::FieldError;
use snowbound_services::integrations::IntegrationInput;
use uuid::Uuid;

use super::layout::UiResult;
use super::session::{FormData, Posted};
use super::settings::{page, Shown};
use super::typed::form_errors;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/integrations/{id}/settings/who-wins", post(save))
}

/// One choice of the section's selects, with the sentence the page shows for it.
pub struct WinnerChoice {
    pub value: &'static str,
    pub label: &'static str,
}

pub const WINNERS: [WinnerChoice; 3] = [
    WinnerChoice {
        value: "latest",
        label: "The later change wins (ServiceNow's sys_updated_on against Snowbound's change)",
    },
    WinnerChoice {
        value: "snowbound",
        label: "Snowbound wins: it puts its value back on the next sync and notes it on the link",
    },
    WinnerChoice {
        value: "servicenow",
        label: "ServiceNow wins: Snowbound takes the agent's value and stops pushing it until it changes in Snowbound",
    },
];

fn winner(form: &FormData, field: &str) -> Result<Winner, FieldError> {
    let typed = form.text(field);
    serde_json::from_value(serde_json::Value::String(typed.clone())).map_err(|_| {
        FieldError::new(
            format!("servicenow.who_wins.{field}"),
            format!("`{typed}` is not latest, snowbound or servicenow"),
        )
    })
}

async fn save(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted { user, form }: Posted,
) -> UiResult {
    let caller = user.caller();
    let service = state.integrations();
    let record = service.visible(&caller, id).await?;
    let result = match (winner(&form, "state"), winner(&form, "severity")) {
        (Ok(state_winner), Ok(severity_winner)) => {
            let mut input = IntegrationInput::from(&record.integration);
            input.servicenow.who_wins.state = state_winner;
            input.servicenow.who_wins.severity = severity_winner;
            service
                .update(&caller, id, input)
                .await
                .map(|_| ())
                .map_err(ApiError::from)
        }
        (state_result, severity_result) => {
            let errors = [state_result.err(), severity_result.err()]
                .into_iter()
                .flatten()
                .collect();
            Err(ApiError::invalid_fields(errors))
        }
    };
    match result {
        Ok(()) => Ok(
            Redirect::to(&format!("/integrations/{id}/settings?done=saved#who-wins"))
                .into_response(),
        ),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(e.into()),
        Err(e) => {
            let shown = Shown {
                who_wins_errors: form_errors(&e),
                who_wins_error: Some(e.message),
                status: Some(e.status),
                ..Shown::default()
            };
            page(&state, &user, record, shown).await
        }
    }
}
