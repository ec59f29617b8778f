//! The one harness of the HTTP tests: [`TestApp`] boots the real Snowbound on a random
//! port (SQLite, or PostgreSQL in a fresh schema) against the in-process ServiceNow
//! emulator, and [`Api`] talks to it over HTTP like a user, answering typed [`Answer`]s.
//! A library rather than a `mod support;` so it is compiled once, not into every test
//! binary.

mod api;
mod app;
mod backend;
pub mod node;
pub mod ui;

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;
use snowbound_emulator::ReceivedRequest;

pub use api::{Answer, Api};
pub use app::{start_when_free, test_config, Spawn, TestApp};
pub use backend::Backend;

/// The admin bearer token of every [`TestApp`].
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The `id` of a JSON object.
pub fn id(value: &Value) -> uuid::Uuid {
    value["id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no id in {value}"))
}

/// Merges `extra` into `target`, object keys recursively.
pub fn merge(target: &mut Value, extra: Value) {
    match (target, extra) {
        (Value::Object(target), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (target, extra) => *target = extra,
    }
}

/// Polls `condition` until it holds; panics with `what` after 30 s. Generous because
/// a test binary runs many tests at once on a small machine; a passing test waits
/// only as long as its condition takes.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The body of a write ServiceNow received, as a map of field → value.
pub fn body_fields(request: &ReceivedRequest) -> std::collections::BTreeMap<String, String> {
    request
        .body
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}
