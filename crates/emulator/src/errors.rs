//! ServiceNow's error envelope and message catalogue (docs/servicenow/TABLE_API.md §1.5, §1.6, §5).

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::Value;

pub(crate) const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// Largest body an instance accepts (§1.2).
pub(crate) const MAX_BODY: usize = 10_485_760;

/// An answer in the `{"error":{…},"status":"failure"}` shape.
#[derive(Debug, Clone)]
pub(crate) struct SnError {
    pub status: StatusCode,
    pub message: String,
    pub detail: Option<String>,
    pub headers: Vec<(&'static str, String)>,
}

impl SnError {
    pub fn new(status: u16, message: &str, detail: Option<&str>) -> Self {
        SnError {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: message.to_string(),
            detail: detail.map(str::to_string),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Written by hand because key order matters to clients that compare bodies
    /// byte-for-byte, and serde_json's map sorts keys.
    pub fn body_text(&self) -> String {
        format!(
            r#"{{"error":{{"message":{},"detail":{}}},"status":"failure"}}"#,
            Value::from(self.message.as_str()),
            self.detail
                .as_deref()
                .map(Value::from)
                .unwrap_or(Value::Null)
        )
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            401,
            "User Not Authenticated",
            Some("Required to provide Auth information"),
        )
        .header("www-authenticate", "BASIC realm=\"Service-now\"")
    }

    /// Basic refused by the enforced Basic authentication restriction: the message seen on
    /// an enforcing instance (docs/servicenow/AUTH_AND_INBOUND.md §1.1), which also tells
    /// a test this refusal apart from a wrong password.
    pub fn basic_auth_restricted() -> Self {
        Self::new(
            401,
            "User is not authenticated",
            Some("Required to provide Auth information"),
        )
        .header("www-authenticate", "BASIC realm=\"Service-now\"")
    }

    /// An API key sent while no REST API Access Policy for the Table API allows token
    /// based auth, so the Global REST API policy applies (AUTH_AND_INBOUND.md §1.4).
    pub fn api_key_not_allowed() -> Self {
        Self::new(
            401,
            "User Not Authenticated",
            Some("Token Based Auth isn't allowed in the Global REST API Policy"),
        )
    }

    pub fn invalid_table(table: &str) -> Self {
        Self::new(400, &format!("Invalid table {table}"), None)
    }

    pub fn no_resource() -> Self {
        Self::new(400, "Requested URI does not represent any resource", None)
    }

    pub fn bad_json() -> Self {
        Self::new(
            400,
            "Exception while reading request",
            Some("The payload is not valid JSON."),
        )
    }

    pub fn too_large(len: usize) -> Self {
        Self::new(
            400,
            "Exception while reading request",
            Some(&format!(
                "Rejected large REST payload with content-length = {len} bytes. Max allowed: {MAX_BODY} bytes."
            )),
        )
    }

    pub fn no_record() -> Self {
        Self::new(
            404,
            "No Record found",
            Some("Record doesn't exist or ACL restricts the record retrieval"),
        )
    }

    /// v1 answers an empty list with 404 (§1.1).
    pub fn no_records_v1() -> Self {
        Self::new(
            404,
            "No Record found",
            Some("Records matching query not found. Check query parameter or offset parameter"),
        )
    }

    pub fn method_not_allowed(allow: &str) -> Self {
        Self::new(405, "Method not Supported", Some("Method not Supported")).header("allow", allow)
    }

    pub fn acl(operation: &str) -> Self {
        Self::new(
            403,
            "Operation Failed",
            Some(&format!(
                "ACL Exception {operation} Failed due to security constraints"
            )),
        )
    }

    pub fn query_denied() -> Self {
        Self::new(403, "Insufficient rights to query records", None)
    }

    /// `labels` are the labels of the missing mandatory fields.
    pub fn data_policy(labels: &[&str]) -> Self {
        Self::new(
            403,
            "Operation Failed",
            Some(&format!(
                "Data Policy Exception: \n\tThe following fields are mandatory: {}",
                labels.join(", ")
            )),
        )
    }

    pub fn rate_limited(limit: u64, unit: &str) -> Self {
        Self::new(
            429,
            "Rate limit exceeded",
            Some(&format!(
                "Rate limit of {limit} requests per {unit} for Table API exceeded"
            )),
        )
    }

    /// A ServiceNow-looking body for an injected status with no body of its own.
    pub fn for_status(status: u16) -> Self {
        match status {
            400 => Self::new(400, "Bad Request", None),
            401 => Self::unauthenticated(),
            403 => Self::acl("Insert"),
            404 => Self::no_record(),
            405 => Self::method_not_allowed("GET, POST, PUT, PATCH, DELETE"),
            429 => Self::rate_limited(100, "hour").header("retry-after", "1"),
            500 => Self::new(
                500,
                "Transaction cancelled: maximum execution time exceeded",
                Some("Transaction cancelled: maximum execution time exceeded Check logs for error trace or enable glide.rest.debug property to verify REST request processing"),
            ),
            _ => {
                let reason = StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("Error");
                Self::new(status, reason, None)
            }
        }
    }
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    text_json_response(status, body.to_string())
}

fn text_json_response(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    resp
}

impl IntoResponse for SnError {
    fn into_response(self) -> Response {
        let mut resp = text_json_response(self.status, self.body_text());
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().append(name, v);
            }
        }
        resp
    }
}
