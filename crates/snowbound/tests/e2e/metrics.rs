//! `/metrics` of the real binary: closed by `SNOWBOUND_METRICS_TOKEN`, requests counted
//! by route template and status class (never the raw path), and the output accepted by
//! Prometheus's own `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};

use snowbound_testkit::node::Node;
use snowbound_testkit::ADMIN_TOKEN;

const METRICS_TOKEN: &str = "scrape-token-for-the-test";
/// Debian's `prometheus` package; `.ci/run` installs it.
const PROMTOOL: &str = "/usr/bin/promtool";

fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
}

fn promtool_check(text: &str) {
    assert!(
        std::path::Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: apt-get install prometheus (as .ci/run does)"
    );
    let mut child = Command::new(PROMTOOL)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics refused:\n{}{}\n---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_count_route_templates_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("SNOWBOUND_METRICS_TOKEN", METRICS_TOKEN)];
    let node = Node::start_with(crate::SNOWBOUND, dir.path(), &env, None).await;
    let http = reqwest::Client::new();
    let metrics = format!("{}/metrics", node.base);

    let refused = http.get(&metrics).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let refused = http
        .get(&metrics)
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);

    let missing = uuid::Uuid::new_v4();
    for _ in 0..2 {
        let answer = http
            .get(format!("{}/api/v1/incidents/{missing}", node.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 404);
    }
    let answer = http
        .get(format!("{}/api/v1/teams", node.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let answer = http
        .get(format!("{}/no/such/{missing}", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);

    let scrape = http
        .get(&metrics)
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    let content_type = scrape.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = scrape.text().await.unwrap();
    // What Prometheus itself asks for.
    let openmetrics = http
        .get(&metrics)
        .bearer_auth(METRICS_TOKEN)
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    let content_type = openmetrics.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let openmetrics = openmetrics.text().await.unwrap();
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");

    let series = |route: &str, class: &str| {
        format!(r#"snowbound_http_requests_total{{route="{route}",status_class="{class}"}}"#)
    };
    assert_eq!(
        sample(&text, &series("/api/v1/incidents/{id}", "4xx")),
        Some("2"),
        "{text}"
    );
    assert_eq!(
        sample(&text, &series("/api/v1/teams", "2xx")),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        sample(&text, &series("unmatched", "4xx")),
        Some("1"),
        "{text}"
    );
    assert!(
        !text.contains(&missing.to_string()),
        "a raw path in a label:\n{text}"
    );
    promtool_check(&text);
}
