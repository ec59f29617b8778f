//! A `json` source's part of its page: the kept payloads with what the saved mapping
//! makes of each, and the mapping form (fields named as the API's `json.*`, so refusals
//! land on them) whose Preview runs the typed mapping on a chosen kept payload — "this
//! payload would become: …" — and whose Save stores it through the source service.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::de::DeserializeOwned;
use serde_json::Value;
use snowbound_core::ingest::json_mapping::{JsonMapping, Preview, ValueMap};
use snowbound_services::sources::{PayloadView, PreviewPayload, SourceChange};
use snowbound_services::{ServiceError, ServiceResult};
use uuid::Uuid;

use super::layout::{when, UiResult};
use super::session::{FormData, Posted};
use super::source_page::{render_page, JsonForm};
use super::typed::Typed;
use crate::error::ApiError;
use crate::state::AppState;

pub struct PayloadRow {
    pub index: usize,
    pub received: String,
    pub body: String,
    pub truncated: bool,
    pub verdict: String,
    pub accepted: bool,
}

impl PayloadRow {
    pub fn new(index: usize, view: PayloadView) -> Self {
        // Pretty-printed when it is JSON, so nested paths are easy to read off.
        let body = serde_json::from_str::<Value>(&view.payload.body)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or(view.payload.body);
        PayloadRow {
            index,
            received: when(&view.payload.received_at),
            body,
            truncated: view.payload.truncated,
            accepted: view.preview.accepted,
            verdict: verdict(&view.preview),
        }
    }
}

/// One sentence: what the payload becomes, or why it does not.
pub fn verdict(preview: &Preview) -> String {
    if let Some(error) = preview.errors.first() {
        return match &error.path {
            Some(path) => format!("refused: {} (`{path}`): {}", error.field, error.message),
            None => format!("refused: {}: {}", error.field, error.message),
        };
    }
    if !preview.accepted {
        return format!("refused: the mapping lacks {}", preview.missing.join(", "));
    }
    let i = &preview.incident;
    let key = i.dedup_key.as_deref().unwrap_or_default();
    match i.status {
        Some(snowbound_core::ingest::json_mapping::MappedStatus::Resolved) => {
            format!("resolves the incident of key `{key}`")
        }
        _ => format!(
            "opens or updates a {} incident “{}” (key `{key}`)",
            i.severity.map(|s| s.as_str()).unwrap_or("?"),
            i.title.as_deref().unwrap_or_default()
        ),
    }
}

/// The detailed preview: each field of the incident, then what is missing or failed.
pub struct PreviewBlock {
    pub index: usize,
    pub verdict: String,
    pub accepted: bool,
    pub fields: Vec<(&'static str, String)>,
    pub missing: Vec<String>,
    pub errors: Vec<String>,
}

impl PreviewBlock {
    pub fn new(index: usize, preview: &Preview) -> Self {
        let i = &preview.incident;
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "—".into());
        let attributes = i
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        PreviewBlock {
            index,
            verdict: verdict(preview),
            accepted: preview.accepted,
            fields: vec![
                ("Dedup key", or_dash(i.dedup_key.clone())),
                (
                    "Status",
                    or_dash(i.status.map(|s| format!("{s:?}").to_lowercase())),
                ),
                ("Title", or_dash(i.title.clone())),
                ("Description", or_dash(i.description.clone())),
                ("Severity", or_dash(i.severity.map(|s| s.to_string()))),
                (
                    "Attributes",
                    or_dash(Some(attributes).filter(|a| !a.is_empty())),
                ),
            ],
            missing: preview.missing.clone(),
            errors: preview
                .errors
                .iter()
                .map(|e| match &e.path {
                    Some(path) => format!("{} (`{path}`): {}", e.field, e.message),
                    None => format!("{}: {}", e.field, e.message),
                })
                .collect(),
        }
    }
}

/// The form's values for a stored mapping.
pub fn form_of(mapping: &JsonMapping) -> FormData {
    let mut pairs = Vec::new();
    let mut put = |name: &str, value: String| pairs.push((name.to_owned(), value));
    for (name, value) in [
        ("json.dedup_key", &mapping.dedup_key),
        ("json.title", &mapping.title),
        ("json.description", &mapping.description),
    ] {
        put(name, value.clone().unwrap_or_default());
    }
    fn lines<T: serde::Serialize>(spec: &ValueMap<T>) -> String {
        spec.map
            .iter()
            .map(|(k, v)| format!("{k}={}", word(v)))
            .collect::<Vec<_>>()
            .join("\n")
    }
    if let Some(s) = &mapping.status {
        put("json.status.path", s.path.clone().unwrap_or_default());
        put("json.status.map", lines(s));
        put(
            "json.status.default",
            s.default.as_ref().map(word).unwrap_or_default(),
        );
    }
    if let Some(s) = &mapping.severity {
        put("json.severity.path", s.path.clone().unwrap_or_default());
        put("json.severity.map", lines(s));
        put(
            "json.severity.default",
            s.default.as_ref().map(word).unwrap_or_default(),
        );
    }
    let attributes = mapping
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n");
    put("json.attributes", attributes);
    FormData(pairs)
}

fn word<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The mapping as typed; blank fields are unset (an incomplete mapping previews).
pub fn mapping_of(form: &FormData) -> ServiceResult<JsonMapping> {
    let text = |name: &str| Some(form.text(name).trim().to_owned()).filter(|v| !v.is_empty());
    Ok(JsonMapping {
        dedup_key: text("json.dedup_key"),
        title: text("json.title"),
        description: text("json.description"),
        status: value_map(form, "json.status")?,
        severity: value_map(form, "json.severity")?,
        attributes: pairs(form, "json.attributes", "name=JSONPath")?
            .into_iter()
            .collect(),
    })
}

fn value_map<T: DeserializeOwned>(
    form: &FormData,
    field: &str,
) -> ServiceResult<Option<ValueMap<T>>> {
    let path =
        Some(form.text(&format!("{field}.path")).trim().to_owned()).filter(|p| !p.is_empty());
    let map_field = format!("{field}.map");
    let mut map = std::collections::BTreeMap::new();
    for (n, (word, ours)) in pairs(form, &map_field, "their_word=ours")?
        .into_iter()
        .enumerate()
    {
        let ours = ours_of(&ours)
            .map_err(|m| ServiceError::invalid(&map_field, format!("line {}: {m}", n + 1)))?;
        map.insert(word, ours);
    }
    let default_field = format!("{field}.default");
    let default = match form.text(&default_field).trim() {
        "" => None,
        word => Some(ours_of(word).map_err(|m| ServiceError::invalid(&default_field, m))?),
    };
    if path.is_none() && map.is_empty() && default.is_none() {
        return Ok(None);
    }
    Ok(Some(ValueMap { path, map, default }))
}

fn ours_of<T: DeserializeOwned>(word: &str) -> Result<T, String> {
    serde_json::from_value(Value::String(word.trim().to_owned())).map_err(|e| e.to_string())
}

/// `left=right` per line, split at the first `=` (a JSONPath filter may hold more).
fn pairs(form: &FormData, field: &str, shape: &str) -> ServiceResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (n, line) in form.text(field).lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((left, right)) = line.split_once('=') else {
            return Err(ServiceError::invalid(
                field,
                format!("line {}: write {shape}", n + 1),
            ));
        };
        out.push((left.trim().to_owned(), right.trim().to_owned()));
    }
    Ok(out)
}

/// The mapping form's Preview and Save.
pub(super) async fn post_mapping(
    State(state): State<AppState>,
    Path((id, source)): Path<(Uuid, Uuid)>,
    Posted { user, form }: Posted,
) -> UiResult {
    let sources = state.services.sources();
    let caller = user.caller();
    // A form of one team's page must not act on another team's source.
    sources.of_team(&caller, id, source).await?;
    let index = form
        .text("payload_index")
        .trim()
        .parse::<usize>()
        .unwrap_or(0);
    let saving = form.text("action") == "save";
    let result = async {
        let mapping = mapping_of(&form)?;
        if saving {
            let change = SourceChange {
                json: Some(mapping),
                ..SourceChange::default()
            };
            sources.update(&caller, source, change).await?;
            return ServiceResult::Ok(None);
        }
        let preview = sources
            .preview(&caller, source, &mapping, PreviewPayload::Kept(index))
            .await?;
        ServiceResult::Ok(Some(preview))
    }
    .await
    .map_err(ApiError::from);
    match result {
        Ok(None) => Ok(
            Redirect::to(&format!("/teams/{id}/sources/{source}?done=saved#mapping"))
                .into_response(),
        ),
        Ok(Some(preview)) => {
            let json = JsonForm {
                form: Typed::new(form),
                preview: Some(PreviewBlock::new(index, &preview)),
            };
            render_page(&state, &user, id, source, Some(json), StatusCode::OK, None).await
        }
        Err(e) if e.status.is_client_error() && e.status != StatusCode::NOT_FOUND => {
            let status = e.status;
            let json = JsonForm {
                form: Typed::refused(form, &e),
                preview: None,
            };
            render_page(&state, &user, id, source, Some(json), status, None).await
        }
        Err(e) => Err(e.into()),
    }
}
