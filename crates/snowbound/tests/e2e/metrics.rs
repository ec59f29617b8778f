//! `/metrics` of the real binary: closed by `SNOWBOUND_METRICS_TOKEN`, requests counted
//! by route template and status class (never the raw path), the ServiceNow calls of a
//! sync lifecycle by integration, method and status class, and the output accepted by
//! Prometheus's own `promtool check metrics`; then the real Prometheus scraping a sync
//! lifecycle with the shipped alerting rules (`deploy/alerts.yml`) loaded.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use snowbound_emulator::{Emulator, EmulatorConfig, Fault};
use snowbound_store::LinkState;
use snowbound_testkit::node::Node;
use snowbound_testkit::{eventually, Api, Backend, TestApp, ADMIN_TOKEN};

const METRICS_TOKEN: &str = "scrape-token-for-the-test";
/// Debian's `prometheus` package (scripts/test installs it): the server and its promtool.
const PROMTOOL: &str = "/usr/bin/promtool";
const PROMETHEUS: &str = "/usr/bin/prometheus";
/// The shipped alerting rules, relative to this crate (where cargo runs its tests).
const ALERT_RULES: &str = "../../deploy/alerts.yml";
const INCIDENTS: &str = "/api/now/table/incident";

fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
}

fn promtool_check(text: &str) {
    assert!(
        std::path::Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: apt-get install prometheus (as scripts/test does)"
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
fn the_alerting_rules_in_deploy_pass_promtool() {
    assert!(
        std::path::Path::new(PROMTOOL).exists(),
        "{PROMTOOL} is missing: apt-get install prometheus (as scripts/test does)"
    );
    let output = Command::new(PROMTOOL)
        .args(["check", "rules", ALERT_RULES])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "promtool check rules refused {ALERT_RULES}:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

snowbound_testkit::on_both_backends!(a_real_prometheus_scrapes_a_sync_lifecycle);

/// The real Prometheus scrapes a node through a whole lifecycle (an OAuth integration, a
/// 429, a create and a resolve, a parked change, an ingested alert), with the shipped
/// rules loaded; its query API must then see every series with its value.
async fn a_real_prometheus_scrapes_a_sync_lifecycle(backend: Backend) {
    let t = TestApp::spawn_with(backend, crate::auth_types::instance(), |c| {
        c.metrics_token = Some(METRICS_TOKEN.into())
    })
    .await;
    let prometheus = Prometheus::start(&t.api.base);
    prometheus.wait_ready().await;

    let team = t.team("core").await;
    let other = t.team("elsewhere").await;
    let oauth = crate::auth_types::auth_types()[1].clone();
    let integration = crate::auth_types::create(&t, team, oauth).await.id();
    t.emulator.add_fault(
        Fault::status("POST", INCIDENTS, 429)
            .with_retry_after(1)
            .times(1),
    );
    let incident = t.incident(team, "Metered", "critical").await;
    t.wait_synced(incident).await;
    t.post(
        &format!("/api/v1/incidents/{incident}/resolve"),
        json!({"comment": "done"}),
    )
    .await;
    t.wait_synced(incident).await;
    t.emulator
        .add_fault(Fault::status("POST", INCIDENTS, 400).times(1));
    let rejected = t.incident(team, "Rejected", "minor").await;
    eventually("the rejected create is parked", || async {
        t.store()
            .links_of_incident(rejected)
            .await
            .unwrap()
            .iter()
            .any(|l| l.state == LinkState::Parked)
    })
    .await;
    let source = t
        .post(
            "/api/v1/sources",
            json!({"team_id": other, "type": "webhook", "name": "hook"}),
        )
        .await;
    let ingest_url = source["ingest_url"].as_str().unwrap();
    let answer = t
        .send_alert(
            ingest_url,
            json!({"dedup_key": "disk-db1", "title": "Disk 99%", "severity": "critical"}),
        )
        .await;
    assert_eq!(answer.body["action"], "opened", "{}", answer.text);
    let again = t
        .send_alert(
            ingest_url,
            json!({"dedup_key": "disk-db1", "title": "Disk 99%", "severity": "critical"}),
        )
        .await;
    assert_eq!(again.body["action"], "unchanged", "{}", again.text);
    let malformed = t.send_alert(ingest_url, json!(["not an alert"])).await;
    assert_eq!(malformed.status, 422, "{}", malformed.text);

    let i = format!(r#"integration="{integration}""#);
    let expected = [
        (r#"up{job="snowbound"}"#.to_owned(), 1.0),
        (format!("snowbound_links{{{i},state=\"synced\"}}"), 1.0),
        (format!("snowbound_links{{{i},state=\"parked\"}}"), 1.0),
        (format!("snowbound_links{{{i},state=\"pending\"}}"), 0.0),
        (format!("snowbound_links{{{i},state=\"retrying\"}}"), 0.0),
        (format!("snowbound_links{{{i},state=\"waiting\"}}"), 0.0),
        (r#"snowbound_incidents{status="resolved"}"#.to_owned(), 1.0),
        (r#"snowbound_incidents{status="open"}"#.to_owned(), 2.0),
        (
            r#"snowbound_incidents{status="acknowledged"}"#.to_owned(),
            0.0,
        ),
        (
            format!("snowbound_servicenow_rate_limited_total{{{i}}}"),
            1.0,
        ),
        (
            format!("snowbound_servicenow_paused_seconds_total{{{i}}}"),
            1.0,
        ),
        (
            format!("snowbound_servicenow_token_fetches_total{{{i},outcome=\"ok\"}}"),
            1.0,
        ),
        (
            format!(
                "sum(snowbound_servicenow_calls_total{{{i},method=\"POST\",status_class=\"4xx\"}})"
            ),
            2.0,
        ),
        // The create (after the 429's pause) and the resolve; the parked create is no sync.
        (format!("snowbound_sync_lag_seconds_count{{{i}}}"), 2.0),
        (
            format!("snowbound_sync_lag_seconds_sum{{{i}}} >= bool 1"),
            1.0,
        ),
        (
            r#"snowbound_alerts_ingested_total{source_kind="webhook",outcome="opened"}"#.to_owned(),
            1.0,
        ),
        (
            r#"snowbound_alerts_ingested_total{source_kind="webhook",outcome="unchanged"}"#
                .to_owned(),
            1.0,
        ),
        (
            r#"snowbound_alerts_ingested_total{source_kind="webhook",outcome="refused"}"#
                .to_owned(),
            1.0,
        ),
        ("snowbound_engine_leases_in_flight".to_owned(), 0.0),
    ];
    for (query, value) in &expected {
        prometheus.wait_for(query, *value).await;
    }
    // No incident id ever becomes a label value.
    let every = prometheus
        .api(
            "/api/v1/query",
            &[("query", r#"{__name__=~"snowbound_.+"}"#)],
        )
        .await
        .to_string();
    for id in [incident, rejected] {
        assert!(
            !every.contains(&id.to_string()),
            "incident {id} in a label: {every}"
        );
    }

    // The shipped rules evaluate cleanly, and the parked link trips its alert (pending:
    // it waits out its `for`).
    eventually("every rule evaluated without error", || async {
        let rules = prometheus.api("/api/v1/rules", &[]).await;
        let rules: Vec<&Value> = rules["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        rules.len() == 7 && rules.iter().all(|r| r["health"] == "ok")
    })
    .await;
    eventually(
        "SnowboundLinksParked is pending for the integration",
        || async {
            let alerts = prometheus.api("/api/v1/alerts", &[]).await;
            alerts["data"]["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| {
                    a["labels"]["alertname"] == "SnowboundLinksParked"
                        && a["labels"]["integration"] == integration.to_string()
                })
        },
    )
    .await;
}

/// Debian's Prometheus server, scraping one Snowbound every second with its bearer token
/// and the shipped alerting rules; killed when dropped.
struct Prometheus {
    child: std::process::Child,
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(snowbound: &str) -> Prometheus {
        assert!(
            std::path::Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: apt-get install prometheus (as scripts/test does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, METRICS_TOKEN).unwrap();
        let rules = std::fs::canonicalize(ALERT_RULES).unwrap();
        let target = snowbound.trim_start_matches("http://");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files: [\"{}\"]\n\
             scrape_configs:\n  - job_name: snowbound\n    authorization:\n      credentials_file: \"{}\"\n\
             \x20   static_configs:\n      - targets: [\"{target}\"]\n",
            rules.display(),
            token.display()
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("prometheus starts");
        Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn wait_ready(&self) {
        eventually("Prometheus is ready", || async {
            self.http
                .get(format!("{}/-/ready", self.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let answer = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .send()
            .await
            .unwrap();
        answer.json().await.unwrap()
    }

    /// The value of an instant query that yields one sample.
    async fn query(&self, query: &str) -> Option<f64> {
        let answer = self.api("/api/v1/query", &[("query", query)]).await;
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        let result = answer["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    async fn wait_for(&self, query: &str, value: f64) {
        let mut last = None;
        let waited = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            loop {
                last = self.query(query).await;
                if last == Some(value) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        })
        .await;
        assert!(
            waited.is_ok(),
            "Prometheus never saw {query} == {value}; last: {last:?}"
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
