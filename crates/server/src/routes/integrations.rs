//! Outbound integrations: create, read, partial update (a JSON merge patch onto the
//! stored settings), delete. The service validates and stores; this translates.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::Value;
use snowbound_core::Integration;
use snowbound_services::integrations::{AuthInput, IntegrationInput};
use snowbound_store::IntegrationRecord;
use uuid::Uuid;

use crate::auth::Caller;
use crate::choices::unknown_value_warnings;
use crate::error::{ApiError, ApiResult};
use crate::extract::{from_value, Json, Path};
use crate::routes::merge_patch::merge_patch_value;
use crate::state::AppState;
use crate::views::IntegrationView;

/// The answer to a create or PATCH: the stored integration plus a warning for each
/// mapped value ServiceNow's choice lists do not know (none when they cannot be read).
async fn with_warnings(state: &AppState, record: IntegrationRecord) -> IntegrationView {
    let warnings = unknown_value_warnings(state, &record.integration).await;
    let mut view = IntegrationView::new(record).with_engine(state.engine().as_ref());
    view.warnings = Some(warnings);
    view
}

#[utoipa::path(post, operation_id = "integrations_create", path = "/integrations", tag = "integrations",
    description = "Every bad setting is listed in `fields`, named by its path (`servicenow.close_code`).",
    request_body = IntegrationInput,
    responses((status = 201, description = "The integration, with `warnings` for mapped values \
        ServiceNow's choice lists do not know", body = IntegrationView)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(input): Json<IntegrationInput>,
) -> ApiResult<impl IntoResponse> {
    let record = state.integrations().create(&caller, input).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(with_warnings(&state, record).await),
    ))
}

#[utoipa::path(get, operation_id = "integrations_list", path = "/integrations", tag = "integrations",
    responses((status = 200, description = "Integrations serving the caller's teams", body = Vec<IntegrationView>)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    let engine = state.engine();
    let views: Vec<IntegrationView> = state
        .integrations()
        .list(&caller)
        .await?
        .into_iter()
        .map(|record| IntegrationView::new(record).with_engine(engine.as_ref()))
        .collect();
    Ok(axum::Json(views))
}

#[utoipa::path(get, operation_id = "integrations_get", path = "/integrations/{id}", tag = "integrations",
    params(("id" = Uuid, Path, description = "The integration's id")),
    responses((status = 200, description = "The integration", body = IntegrationView)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    let record = state.integrations().visible(&caller, id).await?;
    Ok(axum::Json(
        IntegrationView::new(record).with_engine(state.engine().as_ref()),
    ))
}

#[utoipa::path(patch, operation_id = "integrations_patch", path = "/integrations/{id}", tag = "integrations",
    description = "An RFC 7386 JSON merge patch onto the stored settings (the shape of \
        `IntegrationInput`; `null` removes), checked as a whole. `servicenow.auth` of another \
        `type` replaces the stored one; a change of instance, client or user needs its secret again.",
    params(("id" = Uuid, Path, description = "The integration's id")),
    request_body(content = Object, description = "A merge patch over `IntegrationInput`"),
    responses((status = 200, description = "The integration, with `warnings`", body = IntegrationView)))]
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(patch): Json<Value>,
) -> ApiResult<impl IntoResponse> {
    let service = state.integrations();
    let current = service.owned(&caller, id).await?.integration;
    let input = merge_patch(&current, patch)?;
    let record = service.update(&caller, id, input).await?;
    Ok(axum::Json(with_warnings(&state, record).await))
}

#[utoipa::path(delete, operation_id = "integrations_delete", path = "/integrations/{id}", tag = "integrations",
    params(("id" = Uuid, Path, description = "The integration's id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<impl IntoResponse> {
    state.integrations().delete(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The stored integration with `patch` merged in (RFC 7386 JSON merge patch: objects
/// merge key by key, `null` removes), plus the secrets sent. `servicenow.auth` of another
/// type replaces the stored one instead of merging into it; the top-level `username`
/// means Basic and is merged as `servicenow.auth.username`.
pub fn merge_patch(current: &Integration, mut patch: Value) -> ApiResult<IntegrationInput> {
    if !patch.is_object() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
            "a PATCH body must be a JSON object",
        ));
    }
    let current_type = current.servicenow.auth.type_name();
    let mut password = None;
    let mut username = None;
    let mut replace_auth = false;
    let mut sent_auth = false;
    if let Some(Value::Object(servicenow)) = patch.get_mut("servicenow") {
        sent_auth = servicenow.contains_key("auth");
        password = top_level_string(servicenow, "password")?;
        username = top_level_string(servicenow, "username")?;
        match servicenow.get("auth") {
            Some(Value::Object(auth)) => {
                replace_auth = auth
                    .get("type")
                    .is_some_and(|t| t.as_str() != Some(current_type));
            }
            Some(_) => {}
            None => {
                if let Some(username) = &username {
                    let mut auth = serde_json::Map::new();
                    auth.insert("username".into(), Value::String(username.clone()));
                    if current_type != "basic" {
                        auth.insert("type".into(), Value::String("basic".into()));
                        replace_auth = true;
                    }
                    servicenow.insert("auth".into(), Value::Object(auth));
                }
            }
        }
        // Turning the secondary field off drops its map too, unless a map was sent.
        if let Some(Value::Object(severity)) = servicenow.get_mut("severity") {
            if severity.get("secondary_field") == Some(&Value::Null)
                && !severity.contains_key("secondary_map")
            {
                severity.insert("secondary_map".into(), Value::Null);
            }
        }
    }
    let mut merged =
        serde_json::to_value(IntegrationInput::from(current)).map_err(|_| ApiError::internal())?;
    if replace_auth {
        if let Some(Value::Object(servicenow)) = merged.get_mut("servicenow") {
            servicenow.remove("auth");
        }
    }
    merge_patch_value(&mut merged, patch);
    let mut input: IntegrationInput = from_value(merged)?;
    input.servicenow.password = password;
    input.servicenow.username = username;
    // A Basic integration patched without `auth` is patched in the top-level form, and
    // its errors are named there (`servicenow.password`), as before `auth` existed.
    if !sent_auth {
        if let Some(AuthInput::Basic { username, .. }) = &input.servicenow.auth {
            input.servicenow.username = Some(username.clone());
            input.servicenow.auth = None;
        }
    }
    Ok(input)
}

/// A top-level `servicenow.<key>` taken out of the patch (`null` is none).
fn top_level_string(
    servicenow: &mut serde_json::Map<String, Value>,
    key: &str,
) -> ApiResult<Option<String>> {
    match servicenow.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(ApiError::invalid_field(
            format!("servicenow.{key}"),
            "must be a string",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;
    use snowbound_core::validate::validate_servicenow;
    use snowbound_core::{ForwardingMode, ServiceNowSettings, SeverityMap};

    fn stored() -> Integration {
        let mut servicenow = ServiceNowSettings::with_defaults(
            "https://acme.service-now.com".into(),
            "snowbound".into(),
            "Solution provided".into(),
        );
        servicenow.severity.secondary_field = Some("impact".into());
        servicenow.severity.secondary_map = Some(SeverityMap::default());
        Integration {
            id: Uuid::now_v7(),
            display_name: "SN".into(),
            root_team_id: Uuid::now_v7(),
            team_ids: vec![],
            forwarding: ForwardingMode::Always,
            servicenow,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn patch_changes_only_the_keys_sent() {
        let current = stored();
        let patch = json!({"servicenow": {"severity": {"primary_map": {"minor": "4"}}}});
        let input = merge_patch(&current, patch).unwrap();
        let s = input.servicenow.to_settings();
        assert_eq!(s.severity.primary_map.minor, "4");
        assert_eq!(s.severity.primary_map.critical, "1");
        assert_eq!(s.severity.secondary_field.as_deref(), Some("impact"));
        assert_eq!(s.close_code, "Solution provided");
        assert_eq!(input.forwarding, ForwardingMode::Always);
        assert_eq!(input.servicenow.password, None);
    }

    #[test]
    fn null_secondary_field_turns_secondary_off() {
        let patch = json!({"servicenow": {"severity": {"secondary_field": null},
                                          "password": "new"}});
        let input = merge_patch(&stored(), patch).unwrap();
        let s = input.servicenow.to_settings();
        assert_eq!(s.severity.secondary_field, None);
        assert_eq!(s.severity.secondary_map, None);
        assert!(validate_servicenow(&s, Default::default()).is_empty());
        assert_eq!(input.servicenow.password.as_deref(), Some("new"));
    }

    #[test]
    fn auth_of_another_type_replaces_the_stored_one() {
        let patch = json!({"servicenow": {"auth": {"type": "oauth_client_credentials",
                                                   "client_id": "c", "client_secret": "s"}}});
        let input = merge_patch(&stored(), patch).unwrap();
        let auth = input.servicenow.auth.as_ref().unwrap();
        assert_eq!(
            auth.settings(),
            snowbound_core::ServiceNowAuth::OauthClientCredentials {
                client_id: "c".into()
            }
        );
        assert_eq!(
            auth.secret(snowbound_core::SecretKind::ClientSecret),
            Some("s")
        );
        let answer = serde_json::to_string(&input).unwrap();
        assert!(
            !answer.contains("\"s\""),
            "secrets never serialize: {answer}"
        );
    }

    #[test]
    fn the_top_level_username_means_basic() {
        let mut oauth = stored();
        oauth.servicenow.auth = snowbound_core::ServiceNowAuth::OauthClientCredentials {
            client_id: "c".into(),
        };
        let patch = json!({"servicenow": {"username": "u", "password": "p"}});
        let input = merge_patch(&oauth, patch).unwrap();
        assert_eq!(
            input.servicenow.auth_settings(),
            snowbound_core::ServiceNowAuth::Basic {
                username: "u".into()
            }
        );
        assert_eq!(input.servicenow.password.as_deref(), Some("p"));
    }

    #[test]
    fn unknown_keys_in_a_patch_are_named() {
        let err = merge_patch(&stored(), json!({"servicenow": {"close_cod": "x"}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("servicenow.close_cod"));
    }

    #[test]
    fn null_on_a_required_key_is_named() {
        let err = merge_patch(&stored(), json!({"servicenow": {"close_code": null}})).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("servicenow.close_code"));
    }
}
