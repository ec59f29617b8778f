//! `SNOWBOUND_LOG_FORMAT`: with `json` every line the real binary writes is one JSON
//! object, and a request's lines carry the request id its answer's `x-request-id` says
//! (ours, or the client's when it sent a usable one); an unknown format is refused
//! naming the variable.

use std::process::{Command, Stdio};

use serde_json::Value;
use snowbound_testkit::node::Node;
use snowbound_testkit::{eventually, ADMIN_TOKEN};

fn json_lines(log: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"))
        })
        .collect()
}

fn mentions_request(line: &Value, id: &str) -> bool {
    line["span"]["request_id"] == id
        || line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["request_id"] == id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_and_carry_the_answers_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("node.log");
    let env = [
        ("SNOWBOUND_LOG_FORMAT", "json"),
        // tower-http logs each answer at debug; the request span itself is info.
        ("RUST_LOG", "info,sqlx=warn,tower_http=debug"),
    ];
    let node = Node::start_with(crate::SNOWBOUND, &dir.path().join("data"), &env, Some(&log)).await;
    let http = reqwest::Client::new();

    let answer = http
        .get(format!("{}/api/v1/teams", node.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
    let ours = answer.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(!ours.is_empty());

    let answer = http
        .get(format!("{}/healthz", node.base))
        .header("x-request-id", "lb-check-42")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.headers()["x-request-id"], "lb-check-42");

    // An id no one should log verbatim is replaced, not propagated.
    let long = "x".repeat(300);
    let answer = http
        .get(format!("{}/healthz", node.base))
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    let replaced = answer.headers()["x-request-id"].to_str().unwrap();
    assert!(!replaced.is_empty() && replaced != long);

    // The ingest secret stays out of the JSON lines too.
    let _ = http
        .post(format!(
            "{}/ingest/not-a-secret-but-looks-like-one",
            node.base
        ))
        .body("{}")
        .send()
        .await
        .unwrap();

    for id in [ours.as_str(), "lb-check-42"] {
        eventually(&format!("a log line of request {id}"), || async {
            json_lines(&log)
                .iter()
                .any(|line| mentions_request(line, id))
        })
        .await;
    }
    let lines = json_lines(&log);
    assert!(
        lines.iter().any(|l| l["url"].is_string()),
        "the listening line is JSON too"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("not-a-secret-but-looks-like-one"), "{text}");
}

#[test]
fn an_unknown_log_format_is_refused_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(crate::SNOWBOUND)
        .arg("serve")
        .env("SNOWBOUND_LISTEN", "127.0.0.1:0")
        .env("SNOWBOUND_DATA_DIR", dir.path())
        .env("SNOWBOUND_LOG_FORMAT", "xml")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SNOWBOUND_LOG_FORMAT=\"xml\""), "{stderr}");
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing written"
    );
}
