use snowbound_servicenow::ApiCall;
use snowbound_store::ApiCallRecord;
use uuid::Uuid;

/// The client's calls as rows of the integration's API call log.
pub fn api_call_records(
    integration_id: Uuid,
    incident_id: Option<Uuid>,
    calls: Vec<ApiCall>,
) -> Vec<ApiCallRecord> {
    calls
        .into_iter()
        .map(|call| ApiCallRecord {
            integration_id,
            incident_id,
            at: call.at,
            method: call.method,
            url: call.url,
            status: call.status,
            duration_ms: call.duration_ms,
            request_body: call.request_body,
            response_body: call.response_body,
            error: call.error,
        })
        .collect()
}
