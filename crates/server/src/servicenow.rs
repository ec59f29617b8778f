//! The few direct ServiceNow calls the HTTP layer makes for people setting up an
//! integration (test connection, choice lists). Syncing is the engine's job, never ours.

use snowbound_core::Integration;
use snowbound_engine::api_call_records;
use snowbound_servicenow::{ApiCall, Connection};
use snowbound_store::Store;
use uuid::Uuid;

use crate::state::AppState;

/// How to reach the integration's instance, with the stored secrets. The answer on
/// failure is a sentence for the user.
pub async fn connection(
    store: &dyn Store,
    integration: &Integration,
) -> Result<Connection, String> {
    let credentials = store.integration_credentials(integration.id).await.map_err(|e| {
        tracing::error!(integration = %integration.id, error = %e, "cannot read the integration's credentials");
        "the stored credentials cannot be read; set them again".to_owned()
    })?;
    Connection::for_integration(integration, &credentials).map_err(|e| e.to_string())
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
    if let Some(metrics) = &state.metrics {
        records.iter().for_each(|call| metrics.token_fetch(call));
    }
    if let Err(e) = state
        .store
        .record_api_calls(integration_id, incident_id, &records)
        .await
    {
        tracing::warn!(integration = %integration_id, error = %e, "could not record API calls");
    }
}
