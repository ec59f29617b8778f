//! ServiceNow choice lists for the integration form, through the services' short cache
//! per integration and field, and the warnings for mapped values that no active choice
//! knows.
//! Choice lists are a convenience: no failure here ever fails a request.

use std::collections::BTreeMap;
use std::time::Duration;

use snowbound_core::{Integration, ServiceNowSettings, STATE_FIELD};
use snowbound_servicenow::{Choice, Failure};

use crate::servicenow::{connection, record_calls};
use crate::state::AppState;

/// Warnings are a bonus on create/PATCH; an unreachable instance must not hold the
/// answer for the client's full connect timeout.
const WARNINGS_DEADLINE: Duration = Duration::from_secs(5);

/// The answer of `GET …/choices`: the list, or an empty one with a warning saying why.
pub struct Loaded {
    pub choices: Vec<Choice>,
    pub warning: Option<String>,
}

/// Choices of `field` on the integration's table, from the cache unless `refresh`.
/// Only successes are cached, so a fixed ACL shows up at the next try.
pub async fn load(
    state: &AppState,
    integration: &Integration,
    field: &str,
    refresh: bool,
) -> Loaded {
    if !refresh {
        if let Some(choices) = state.services.choice_cache.get(integration.id, field) {
            return Loaded {
                warning: empty_warning(&choices, &integration.servicenow.table, field),
                choices,
            };
        }
    }
    let conn = match connection(state.store.as_ref(), integration).await {
        Ok(conn) => conn,
        Err(message) => {
            return Loaded {
                choices: Vec::new(),
                warning: Some(message),
            }
        }
    };
    let exchange = state.servicenow.choices(&conn, field).await;
    record_calls(state, integration.id, None, exchange.calls).await;
    match exchange.outcome {
        Ok(choices) => {
            state
                .services
                .choice_cache
                .put(integration.id, field, choices.clone());
            Loaded {
                warning: empty_warning(&choices, &conn.table, field),
                choices,
            }
        }
        Err(failure) => Loaded {
            choices: Vec::new(),
            warning: Some(failure_warning(&failure)),
        },
    }
}

fn empty_warning(choices: &[Choice], table: &str, field: &str) -> Option<String> {
    choices.is_empty().then(|| {
        format!(
            "sys_choice has no active choices for {table}.{field} (or read ACLs hide them); \
             enter the internal value manually"
        )
    })
}

fn failure_warning(failure: &Failure) -> String {
    match failure {
        Failure::Rejected { status: 403, .. } => {
            "The integration user cannot read sys_choice (HTTP 403): enter internal values \
             manually, or ask the ServiceNow admin to grant read on sys_choice (e.g. the role \
             personalize_choices or an ACL)"
                .to_owned()
        }
        other => format!("Choice lists could not be loaded from sys_choice: {other}"),
    }
}

/// (ServiceNow field, settings path, value) of every mapped value that must be one of
/// the field's choices.
fn mapped_values(s: &ServiceNowSettings) -> Vec<(&str, String, &str)> {
    let mut mapped = vec![(
        STATE_FIELD,
        "servicenow.state_open".into(),
        s.state_open.as_str(),
    )];
    if let Some(ack) = &s.state_acknowledged {
        mapped.push((STATE_FIELD, "servicenow.state_acknowledged".into(), ack));
    }
    mapped.push((
        STATE_FIELD,
        "servicenow.state_resolved".into(),
        &s.state_resolved,
    ));
    mapped.push((
        &s.close_code_field,
        "servicenow.close_code".into(),
        &s.close_code,
    ));
    let primary = &s.severity.primary_map;
    let field = s.severity.primary_field.as_str();
    mapped.extend([
        (
            field,
            "servicenow.severity.primary_map.critical".into(),
            primary.critical.as_str(),
        ),
        (
            field,
            "servicenow.severity.primary_map.warning".into(),
            primary.warning.as_str(),
        ),
        (
            field,
            "servicenow.severity.primary_map.minor".into(),
            primary.minor.as_str(),
        ),
    ]);
    if let (Some(field), Some(map)) = (&s.severity.secondary_field, &s.severity.secondary_map) {
        mapped.extend([
            (
                field.as_str(),
                "servicenow.severity.secondary_map.critical".into(),
                map.critical.as_str(),
            ),
            (
                field.as_str(),
                "servicenow.severity.secondary_map.warning".into(),
                map.warning.as_str(),
            ),
            (
                field.as_str(),
                "servicenow.severity.secondary_map.minor".into(),
                map.minor.as_str(),
            ),
        ]);
    }
    // A mapping's value that is no template is sent as written: a choice field's must be
    // one of its choices too (a display value is a label, resolved by ServiceNow).
    for (i, mapping) in s.mapping.fields.iter().enumerate() {
        let literal = !mapping.value.contains("{{") && !mapping.value.contains("{%");
        if literal && !mapping.display && !mapping.value.trim().is_empty() {
            mapped.push((
                mapping.field.as_str(),
                format!("servicenow.fields[{i}].value"),
                mapping.value.as_str(),
            ));
        }
    }
    mapped
}

/// A warning for each mapped value that is not an active choice of its field. Fields
/// whose list cannot be read (403, unreachable, empty list) give no warnings: without a
/// list there is nothing to compare with, and the values may well be right.
pub async fn unknown_value_warnings(state: &AppState, integration: &Integration) -> Vec<String> {
    let work = async {
        let conn = connection(state.store.as_ref(), integration).await.ok()?;
        let mapped = mapped_values(&integration.servicenow);
        let mut lists: BTreeMap<&str, Vec<Choice>> = BTreeMap::new();
        for (field, _, _) in &mapped {
            if lists.contains_key(field) {
                continue;
            }
            let exchange = state.servicenow.choices(&conn, field).await;
            record_calls(state, integration.id, None, exchange.calls).await;
            match exchange.outcome {
                Ok(choices) => {
                    state
                        .services
                        .choice_cache
                        .put(integration.id, field, choices.clone());
                    lists.insert(field, choices);
                }
                // sys_choice unreadable or ServiceNow unreachable: the other fields would
                // fail the same way.
                Err(_) => break,
            }
        }
        let table = &integration.servicenow.table;
        let warnings = mapped
            .iter()
            .filter_map(|(field, path, value)| {
                let choices = lists.get(field).filter(|c| !c.is_empty())?;
                if choices.iter().any(|c| c.value == *value) {
                    return None;
                }
                let known: Vec<String> = choices
                    .iter()
                    .map(|c| format!("{} ({})", c.value, c.label))
                    .collect();
                Some(format!(
                    "{path}: `{value}` is not an active choice of {table}.{field}; \
                     active values: {}",
                    known.join(", ")
                ))
            })
            .collect();
        Some(warnings)
    };
    match tokio::time::timeout(WARNINGS_DEADLINE, work).await {
        Ok(Some(warnings)) => warnings,
        _ => Vec::new(),
    }
}
