//! `/metrics` of the real binary: closed by `SNOWBOUND_METRICS_TOKEN`, requests counted
//! by route template and status class (never the raw path), the ServiceNow calls of a
//! sync lifecycle by integration, method and status class, and the output accepted by
//! Prometheus's own `promtool check metrics`.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;
use snowbound_emulator::{Emulator, EmulatorConfig};
use snowbound_testkit::node::Node;
use snowbound_testkit::{eventually, Api, ADMIN_TOKEN};

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
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
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

    // A sync lifecycle: one create and one resolve in ServiceNow.
    let api = Api::new(node.base.clone());
    let team = api.team("core").await;
    let integration = api
        .post(
            "/api/v1/integrations",
            json!({"display_name": "SN", "root_team_id": team, "type": "servicenow", "forwarding": "always",
                   "servicenow": {"instance_url": emulator.base_url(), "username": "admin", "password": "admin",
                                  "close_code": "Solution provided"}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let incident = api.incident(team, "Metered", "critical").await;
    let state = |incident: uuid::Uuid| {
        let api = &api;
        async move {
            api.get(&format!("/api/v1/incidents/{incident}")).await["links"][0]["state"] == "synced"
        }
    };
    eventually("the create synced", || state(incident)).await;
    api.post(
        &format!("/api/v1/incidents/{incident}/resolve"),
        json!({"comment": "done"}),
    )
    .await;
    eventually("the resolve reached ServiceNow", || async {
        emulator
            .records_by_correlation_id("incident", &incident.to_string())
            .first()
            .is_some_and(|r| r["state"] == "6")
    })
    .await;
    eventually("the resolve synced", || state(incident)).await;
    let calls = emulator
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/now/table/incident"))
        .count();

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
        Some("2"),
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
    assert!(
        !text.contains(&incident.to_string()),
        "an incident id in a label:\n{text}"
    );
    let posts = format!(
        r#"snowbound_servicenow_calls_total{{integration="{integration}",method="POST",status_class="2xx"}}"#
    );
    assert_eq!(sample(&text, &posts), Some("1"), "{text}");
    let total = |prefix: &str| -> usize {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
            .sum()
    };
    assert_eq!(
        total("snowbound_servicenow_calls_total{"),
        calls,
        "every Table API call counted once:\n{text}"
    );
    assert_eq!(
        total("snowbound_servicenow_call_duration_seconds_count{"),
        calls,
        "{text}"
    );
    promtool_check(&text);
}

#[test]
fn the_alerting_rules_in_operations_md_pass_promtool() {
    let doc = include_str!("../../../../docs/OPERATIONS.md");
    let rules = doc
        .split("```yaml\n")
        .find(|block| block.starts_with("groups:"))
        .and_then(|block| block.split("```").next())
        .expect("docs/OPERATIONS.md has a rules block");
    assert!(
        std::path::Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: apt-get install prometheus (as .ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snowbound.rules.yml");
    std::fs::write(&file, rules).unwrap();
    let output = Command::new(PROMTOOL)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool check rules refused docs/OPERATIONS.md's rules:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
