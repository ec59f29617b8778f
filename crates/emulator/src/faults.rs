//! Fault injection and the request log: what tests use to make the emulator misbehave
//! and to see what a client sent.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// For the next `times` requests whose method and path match, do `action`.
///
/// JSON form (control API): `{"method":"POST","path":"/api/now/table/incident",
/// "times":1,"action":"status","status":503}`; `path` is a prefix, or a pattern when it
/// contains `*` (matching any run of characters, `/` included).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// HTTP method to match; `None` or `"*"` matches any.
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix or `*` pattern; the query string is not part of it.
    #[serde(default = "default_path")]
    pub path: String,
    /// How many matching requests get the fault; `None` (JSON `null`) = until reset.
    #[serde(default = "default_times")]
    pub times: Option<u32>,
    #[serde(flatten)]
    pub action: FaultAction,
}

fn default_path() -> String {
    "/".into()
}

fn default_times() -> Option<u32> {
    Some(1)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer this status without touching any record. Without `body`, the body is the
    /// ServiceNow error envelope an instance would send for that status.
    Status {
        status: u16,
        #[serde(default)]
        body: Option<Value>,
        /// Adds `Retry-After` with this many seconds.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Wait this long, then handle the request normally.
    Latency { ms: u64 },
    /// Never answer; the client gives up by its own timeout.
    Hang,
    /// Handle the request (a POST creates its record), then close the connection without
    /// sending the answer: the ambiguous outcome a client must reconcile.
    DropAfterWrite,
    /// Handle the request (a POST creates its record), then answer `status` with an HTML
    /// page instead of the Table API's JSON: a proxy, WAF or SSO page in front of the
    /// instance that passed the request on.
    HtmlAfterWrite {
        #[serde(default = "default_html_status")]
        status: u16,
    },
}

fn default_html_status() -> u16 {
    200
}

impl Fault {
    pub fn new(method: Option<&str>, path: &str, action: FaultAction) -> Self {
        Fault {
            method: method.map(str::to_string),
            path: path.to_string(),
            times: Some(1),
            action,
        }
    }

    /// Answer `status` with ServiceNow's body for it.
    pub fn status(method: &str, path: &str, status: u16) -> Self {
        Self::new(
            Some(method),
            path,
            FaultAction::Status {
                status,
                body: None,
                retry_after: None,
            },
        )
    }

    pub fn latency(method: &str, path: &str, latency: Duration) -> Self {
        Self::new(
            Some(method),
            path,
            FaultAction::Latency {
                ms: latency.as_millis() as u64,
            },
        )
    }

    pub fn hang(method: &str, path: &str) -> Self {
        Self::new(Some(method), path, FaultAction::Hang)
    }

    pub fn drop_after_write(method: &str, path: &str) -> Self {
        Self::new(Some(method), path, FaultAction::DropAfterWrite)
    }

    pub fn html_after_write(method: &str, path: &str, status: u16) -> Self {
        Self::new(Some(method), path, FaultAction::HtmlAfterWrite { status })
    }

    /// Applies to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Applies to every matching request until reset.
    pub fn always(mut self) -> Self {
        self.times = None;
        self
    }

    /// Replaces the body of a `Status` fault.
    pub fn with_body(mut self, new_body: Value) -> Self {
        if let FaultAction::Status { body, .. } = &mut self.action {
            *body = Some(new_body);
        }
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        if let FaultAction::Status { retry_after, .. } = &mut self.action {
            *retry_after = Some(secs);
        }
        self
    }

    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = match self.method.as_deref() {
            None | Some("*") | Some("") => true,
            Some(m) => m.eq_ignore_ascii_case(method),
        };
        method_ok && path_matches(&self.path, path)
    }
}

/// `*` matches any run of characters; without `*` the pattern is a prefix.
pub(crate) fn path_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains('*') {
        return path.starts_with(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = path;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

/// One request as the emulator received it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    /// Raw query string (percent-encoded, as sent), "" when none.
    pub query: String,
    /// Parsed JSON body, the raw text as a JSON string when it is not JSON, null when empty.
    pub body: Value,
    /// Status answered; `None` when nothing was answered (hang, or still in progress).
    pub status: Option<u16>,
    /// The fault applied, if any (`status`, `latency`, `hang`, `drop_after_write`,
    /// `html_after_write`).
    pub fault: Option<String>,
    /// Authenticated user name, when authentication succeeded (for a token request: the
    /// user the issued token acts as).
    pub user: Option<String>,
    pub received_at: chrono::DateTime<chrono::Utc>,
    /// How the Table API caller authenticated: `basic`, `bearer` or `api_key`.
    #[serde(default)]
    pub auth: Option<String>,
}

/// Bounded so a long benchmark cannot exhaust memory; the oldest entries go first.
pub(crate) const LOG_CAP: usize = 50_000;

#[derive(Default)]
pub(crate) struct RequestLog {
    pub entries: VecDeque<ReceivedRequest>,
    pub dropped: u64,
}

impl RequestLog {
    pub fn push(&mut self, r: ReceivedRequest) {
        if self.entries.len() >= LOG_CAP {
            self.entries.pop_front();
            self.dropped += 1;
        }
        self.entries.push_back(r);
    }
}

/// Active faults and what the next matching request should get.
#[derive(Default)]
pub(crate) struct FaultSet {
    faults: Vec<Fault>,
}

/// What the middleware should do with one request.
#[derive(Default, Debug)]
pub(crate) struct Decision {
    pub delay: Duration,
    pub action: Option<FaultAction>,
}

impl FaultSet {
    pub fn add(&mut self, f: Fault) {
        self.faults.push(f);
    }

    pub fn clear(&mut self) {
        self.faults.clear();
    }

    pub fn list(&self) -> Vec<Fault> {
        self.faults.clone()
    }

    /// Consumes one use of every matching latency fault and of the first other
    /// matching fault.
    pub fn decide(&mut self, method: &str, path: &str) -> Decision {
        let mut d = Decision::default();
        for f in self.faults.iter_mut() {
            if !f.matches(method, path) {
                continue;
            }
            match &f.action {
                FaultAction::Latency { ms } => d.delay += Duration::from_millis(*ms),
                other if d.action.is_none() => d.action = Some(other.clone()),
                _ => continue,
            }
            if let Some(n) = f.times.as_mut() {
                *n = n.saturating_sub(1);
            }
        }
        self.faults.retain(|f| f.times != Some(0));
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(path_matches(
            "/api/now/table/incident",
            "/api/now/table/incident/abc"
        ));
        assert!(path_matches(
            "/api/now/*/incident/*",
            "/api/now/v2/table/incident/abc"
        ));
        assert!(!path_matches(
            "/api/now/*/incident/*",
            "/api/now/v2/table/sys_choice"
        ));
        assert!(path_matches("*", "/x"));
        assert!(path_matches("/a*", "/a"));
    }

    #[test]
    fn counts_down_and_expires() {
        let mut s = FaultSet::default();
        s.add(Fault::status("POST", "/api", 503).times(2));
        assert!(s.decide("GET", "/api/x").action.is_none());
        assert!(s.decide("post", "/api/x").action.is_some());
        assert!(s.decide("POST", "/api/x").action.is_some());
        assert!(s.decide("POST", "/api/x").action.is_none());
    }

    #[test]
    fn json_form() {
        let f: Fault = serde_json::from_str(
            r#"{"method":"POST","path":"/api","action":"status","status":429}"#,
        )
        .unwrap();
        assert_eq!(f.times, Some(1));
        assert!(matches!(f.action, FaultAction::Status { status: 429, .. }));
        let f: Fault =
            serde_json::from_str(r#"{"path":"/","times":null,"action":"latency","ms":5}"#).unwrap();
        assert_eq!(f.times, None);
    }

    #[test]
    fn request_log_is_capped_with_a_drop_counter() {
        let mut log = RequestLog::default();
        for i in 0..LOG_CAP + 3 {
            log.push(ReceivedRequest {
                method: "GET".into(),
                path: format!("/{i}"),
                query: String::new(),
                body: Value::Null,
                status: Some(200),
                fault: None,
                user: None,
                received_at: chrono::Utc::now(),
                auth: None,
            });
        }
        assert_eq!(log.entries.len(), LOG_CAP);
        assert_eq!(log.dropped, 3);
        assert_eq!(log.entries.front().unwrap().path, "/3");
    }
}
