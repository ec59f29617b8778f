//! Outbound business rules: after an insert or update on a table, post
//! `{"sys_id": …, "table": …}` to a registered URL, as a `RESTMessageV2.executeAsync()`
//! script does (docs/servicenow/AUTH_AND_INBOUND.md §2.2). The post never holds up the
//! write; a failed post is dropped (no delivery guarantee) but recorded for tests.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::faults::LOG_CAP;
use crate::schema::{Kind, TableDef};
use crate::server::Shared;

/// "After insert and update on `table`, post the record's sys_id and table to `url`."
/// A rule on `incident` also fires for tables extending it, as rules are inherited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessRule {
    pub table: String,
    pub url: String,
}

impl BusinessRule {
    pub fn new(table: &str, url: &str) -> Self {
        BusinessRule {
            table: table.to_string(),
            url: url.to_string(),
        }
    }

    fn applies_to(&self, def: &TableDef, class: &str) -> bool {
        self.table == class || (def.kind == Kind::Incident && self.table == "incident")
    }
}

/// One post a rule made. The URL is not repeated here (it may carry a receiver's token);
/// `rule` is the rule's position in registration order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub rule: usize,
    /// The record's own table (`current.getTableName()`), which the body carries.
    pub table: String,
    pub sys_id: String,
    /// `insert` or `update`.
    pub operation: String,
    /// Status the receiver answered; `None` when the post failed without an answer.
    pub status: Option<u16>,
    /// Why the post failed (connection refused, timeout, …), without the URL.
    pub error: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Delivery {
    /// A 2xx answer; anything else is a post the instance dropped.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

#[derive(Default)]
pub(crate) struct DeliveryLog {
    pub entries: VecDeque<Delivery>,
    pub failed: u64,
}

impl DeliveryLog {
    fn push(&mut self, d: Delivery) {
        if !d.succeeded() {
            self.failed += 1;
        }
        if self.entries.len() >= LOG_CAP {
            self.entries.pop_front();
        }
        self.entries.push_back(d);
    }
}

/// An instance gives an async REST message a while, then gives up.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            // An instance posts straight to the endpoint; a test's HTTP_PROXY must not
            // swallow posts to 127.0.0.1.
            .no_proxy()
            .build()
            .expect("a TLS-less reqwest client builds")
    })
}

/// The error and its causes ("connection refused" sits a few sources down).
fn describe(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Starts the posts of every rule that applies to a committed write. Returns at once.
pub(crate) fn fire(
    shared: &Arc<Shared>,
    def: &TableDef,
    class: &str,
    sys_id: &str,
    operation: &'static str,
) {
    let rules: Vec<(usize, String)> = shared
        .control()
        .business_rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.applies_to(def, class))
        .map(|(i, r)| (i, r.url.clone()))
        .collect();
    for (rule, url) in rules {
        let shared = shared.clone();
        let class = class.to_string();
        let sys_id = sys_id.to_string();
        tokio::spawn(async move {
            let body = json!({"sys_id": sys_id, "table": class});
            let sent = client()
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send();
            let outcome = tokio::select! {
                r = sent => r,
                _ = shared.stopped() => return,
            };
            let (status, error) = match outcome {
                Ok(resp) => (Some(resp.status().as_u16()), None),
                Err(e) => (None, Some(describe(e.without_url()))),
            };
            if error.is_some() || status.is_some_and(|s| !(200..300).contains(&s)) {
                tracing::debug!(rule, ?status, ?error, "business rule post dropped");
            }
            shared.control().deliveries.push(Delivery {
                rule,
                table: class,
                sys_id,
                operation: operation.to_string(),
                status,
                error,
                at: chrono::Utc::now(),
            });
        });
    }
}
