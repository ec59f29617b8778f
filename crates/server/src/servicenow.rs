//! The few direct ServiceNow calls the HTTP layer makes for people setting up an
//! integration (test connection, choice lists). Syncing is the engine's job, never ours.

use snowbound_core::Integration;
use snowbound_engine::api_call_records;
use snowbound_servicenow::{ApiCall, Connection};
use snowbound_store::Store;
use uuid::Uuid;

use crate::state::AppState;

/// How to reach the integration's instance, with the stored password. The answer on
/// failure is a sentence for the user.
pub async fn connection(
    store: &dyn Store,
    integration: &Integration,
) -> Result<Connection, String> {
    let settings = &integration.servicenow;
    let instance_url = url::Url::parse(&settings.instance_url)
        .map_err(|e| format!("the instance URL is not valid: {e}"))?;
    let password = store.integration_password(integration.id).await.map_err(|e| {
        tracing::error!(integration = %integration.id, error = %e, "cannot read the integration's password");
        "the stored password cannot be read; set it again".to_owned()
    })?;
    Ok(Connection {
        instance_url,
        username: settings.username.clone(),
        password,
        table: settings.table.clone(),
    })
}

/// Appends to the integration's API call log. A failure to log never fails the request
/// that made the calls.
pub async fn record_calls(
    state: &AppState,
    integration_id: Uuid,
    incident_id: Option<Uuid>,
    calls: Vec<ApiCall>,
) {
    if calls.is_empty() {
        return;
    }
    let records = api_call_records(integration_id, incident_id, calls);
    if let Err(e) = state
        .store
        .record_api_calls(integration_id, incident_id, &records)
        .await
    {
        tracing::warn!(integration = %integration_id, error = %e, "could not record API calls");
    }
}
