//! The real Prometheus Alertmanager (Debian's `prometheus-alertmanager`, installed by
//! `.ci/run`) notifies Snowbound through a webhook receiver: a firing alert becomes an
//! incident and a ServiceNow record, and its resolution resolves both.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use snowbound_testkit::Backend;
use snowbound_testkit::{id, TestApp};

const BINARY_NAMES: [&str; 2] = ["prometheus-alertmanager", "alertmanager"];

/// Alertmanager batches for `group_wait`/`group_interval`; a cold start on a busy CI
/// machine takes a few seconds more than the harness's usual 20 s allows.
const ALERTMANAGER_PATIENCE: Duration = Duration::from_secs(60);

fn alertmanager_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SNOWBOUND_ALERTMANAGER_BIN") {
        return PathBuf::from(path);
    }
    let mut candidates = vec![PathBuf::from("/usr/bin/prometheus-alertmanager")];
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            candidates.extend(BINARY_NAMES.iter().map(|name| dir.join(name)));
        }
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "the Prometheus Alertmanager binary is missing: `.ci/run` installs it \
             (apt-get install -y prometheus-alertmanager), or set SNOWBOUND_ALERTMANAGER_BIN"
            )
        })
}

/// The running Alertmanager; killed when the test ends, however it ends.
struct Alertmanager {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    fn start(dir: &Path, webhook_url: &str) -> Alertmanager {
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  resolve_timeout: 5s\n\
                 route:\n  receiver: snowbound\n  group_by: ['alertname']\n  \
                 group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: snowbound\n    webhook_configs:\n      \
                 - url: '{webhook_url}'\n        send_resolved: true\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let log = dir.join("alertmanager.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new(alertmanager_binary())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Empty disables clustering: no gossip port, no waiting for peers.
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .expect("Alertmanager starts");
        Alertmanager {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) {
        let url = format!("{}/-/ready", self.base);
        let deadline = Instant::now() + ALERTMANAGER_PATIENCE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("Alertmanager exited with {status}:\n{}", self.log());
            }
            if let Ok(response) = http.get(&url).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Alertmanager not ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn post_alerts(&self, http: &reqwest::Client, alerts: Value) {
        let response = http
            .post(format!("{}/api/v2/alerts", self.base))
            .json(&alerts)
            .send()
            .await
            .expect("Alertmanager answers");
        assert!(
            response.status().is_success(),
            "Alertmanager refused the alerts: {}",
            response.text().await.unwrap_or_default()
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it yields a value; the Alertmanager log explains a timeout.
async fn within<T, F, Fut>(am: &Alertmanager, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + ALERTMANAGER_PATIENCE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}\nAlertmanager log:\n{}",
            am.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_firing_alert_from_alertmanager_reaches_servicenow_and_its_resolution_resolves_it() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let team = app.team("sre").await;
    app.integration(team, "always", json!({})).await;
    let source = app
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "alertmanager", "name": "prometheus"}),
        )
        .await;
    let ingest_url = source["ingest_url"].as_str().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut am = Alertmanager::start(dir.path(), ingest_url);
    am.wait_ready(&app.http).await;

    // Resolution repeats the alert with the same start and an end: endsAt must follow it.
    let started = Utc::now().to_rfc3339();
    let alert = |ends_at: Option<String>| {
        let mut alert = json!({
            "labels": {"alertname": "DiskFull", "severity": "critical", "instance": "db-1"},
            "annotations": {"summary": "Disk full on db-1", "description": "/var at 99%"},
            "startsAt": started,
        });
        if let Some(ends_at) = ends_at {
            alert["endsAt"] = json!(ends_at);
        }
        json!([alert])
    };
    am.post_alerts(&app.http, alert(None)).await;

    let incident = within(&am, "an incident from Alertmanager", || async {
        let list = app.get("/api/v1/incidents").await;
        list.as_array().unwrap().first().map(id)
    })
    .await;
    let view = app.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(view["title"], "Disk full on db-1");
    assert_eq!(view["description"], "/var at 99%");
    assert_eq!(view["severity"], "critical");
    assert_eq!(view["attributes"]["instance"], "db-1");
    assert_eq!(view["timeline"][0]["actor"], "source prometheus");

    let record = within(&am, "the ServiceNow record", || async {
        app.record(incident)
    })
    .await;
    assert_eq!(record["short_description"], "Disk full on db-1");
    assert_eq!(record["urgency"], "1");

    am.post_alerts(&app.http, alert(Some(Utc::now().to_rfc3339())))
        .await;
    within(&am, "the incident resolved by Alertmanager", || async {
        let view = app.get(&format!("/api/v1/incidents/{incident}")).await;
        (view["status"] == "resolved").then_some(())
    })
    .await;
    within(&am, "the ServiceNow record resolved (state 6)", || async {
        app.record(incident)
            .filter(|r| r.get("state").map(String::as_str) == Some("6"))
    })
    .await;
    assert_eq!(
        app.get("/api/v1/incidents").await.as_array().unwrap().len(),
        1,
        "one incident for one alert fingerprint"
    );
}

/// On PostgreSQL, which cannot store NUL: Alertmanager's body of three alerts, the middle
/// one with NUL in a label and its summary, becomes three incidents (NUL as U+FFFD).
#[tokio::test]
async fn a_nul_in_one_alert_loses_none_of_alertmanagers_body_on_postgres() {
    let app = snowbound_testkit::TestApp::spawn(Backend::Postgres).await;
    let team = app.team("sre").await;
    let source = app
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "alertmanager", "name": "prometheus"}),
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut am = Alertmanager::start(dir.path(), source["ingest_url"].as_str().unwrap());
    am.wait_ready(&app.http).await;
    let alert = |instance: &str, summary: &str| {
        json!({"labels": {"alertname": "DiskFull", "instance": instance},
               "annotations": {"summary": summary}, "startsAt": Utc::now().to_rfc3339()})
    };
    am.post_alerts(
        &app.http,
        json!([
            alert("db-1", "first"),
            alert("db\u{0}2", "second\u{0}"),
            alert("db-3", "third")
        ]),
    )
    .await;
    let titles = within(&am, "three incidents from one body", || async {
        let list = app.get("/api/v1/incidents").await;
        let mut titles: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_owned())
            .collect();
        titles.sort();
        (titles.len() == 3).then_some(titles)
    })
    .await;
    assert_eq!(titles, ["first", "second\u{FFFD}", "third"]);
}
