//! A disk that fills up and frees again, met the way an operator meets it: the node's
//! data directory on a small filesystem of its own. While it is full, health says so and
//! writes fail with JSON; once space returns, the same process takes writes again and
//! the engine syncs them — no restart. Alerts met while it is full are answered 503 for
//! exactly the alerts not stored, so Alertmanager resends, and the resend stores them.
//! A binary of its own: each test mounts a tmpfs.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{json, Value};
use snowbound::App;
use snowbound_emulator::{Emulator, EmulatorConfig};
use snowbound_testkit::{eventually, test_config, TestApp};
use uuid::Uuid;

/// A tmpfs of its own, unmounted when dropped.
struct SmallDisk {
    mount_point: PathBuf,
}

impl SmallDisk {
    fn mount(under: &Path, size: &str) -> Result<SmallDisk, String> {
        let mount_point = under.join("disk");
        std::fs::create_dir(&mount_point).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount_point)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallDisk { mount_point })
    }

    /// Writes a filler file until the filesystem refuses more.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.mount_point.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: the node's SQLite connections may still be closing, which would make a
        // plain umount fail and leave the tmpfs mounted.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

/// A node whose data directory is a 4 MiB tmpfs, or why there cannot be one here.
async fn node_on_a_small_disk() -> Result<(TestApp, SmallDisk), String> {
    let dir = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(dir.path(), "4m")?;
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let mut config = test_config(&dir);
    config.data_dir = disk.mount_point.clone();
    let app = App::start(config).await.expect("Snowbound starts");
    Ok((TestApp::from_app(app, emulator, dir), disk))
}

async fn health(test: &TestApp) -> StatusCode {
    test.http
        .get(format!("{}/healthz", test.base))
        .send()
        .await
        .map(|r| r.status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Fills the disk, then keeps writing until the node refuses writes and health says so
/// (SQLite may still fit a few writes into pages its WAL already has). Answers the
/// filler, whose removal gives the space back.
async fn fill_until_refused(test: &TestApp, disk: &SmallDisk, team: Uuid) -> PathBuf {
    let filler = disk.fill();
    for n in 0..500 {
        let answer = test
            .try_post(
                "/api/v1/incidents",
                json!({"team_id": team, "title": format!("fill {n}"), "description": "y".repeat(4_000), "severity": "minor"}),
            )
            .await;
        if answer.status_code().is_server_error() {
            assert!(!answer.code().is_empty(), "a JSON error: {answer:?}");
            let health = test
                .http
                .get(format!("{}/healthz", test.base))
                .send()
                .await
                .unwrap();
            if health.status() == StatusCode::SERVICE_UNAVAILABLE {
                let body: Value = health.json().await.unwrap();
                assert_eq!(body["error"]["code"], "unavailable", "{body}");
                return filler;
            }
        } else {
            assert_eq!(answer.status, 201, "{answer:?}");
        }
    }
    panic!("the full disk never made writes and health fail");
}

async fn space_returns(test: &TestApp, filler: PathBuf) {
    std::fs::remove_file(filler).unwrap();
    eventually("health is ok again", || async {
        health(test).await == StatusCode::OK
    })
    .await;
}

#[tokio::test]
async fn a_full_disk_makes_health_fail_and_the_node_recovers_when_space_returns() {
    let (test, disk) = match node_on_a_small_disk().await {
        Ok(node) => node,
        // CI runs as root, where mounting works; a test that cannot run must not pass.
        Err(why) => panic!("this test mounts a small tmpfs and needs root: {why}"),
    };
    let team = test.team("disk").await;
    test.integration(team, "always", json!({})).await;
    let before = test
        .incident(team, "before the disk fills", "warning")
        .await;
    test.wait_synced(before).await;

    let filler = fill_until_refused(&test, &disk, team).await;
    space_returns(&test, filler).await;
    let after = test
        .incident(team, "after space returned", "critical")
        .await;
    test.wait_synced(after).await;
    assert!(test.record(after).is_some());
}

fn firing(fingerprint: &str) -> Value {
    json!({"status": "firing", "fingerprint": fingerprint,
           "labels": {"alertname": fingerprint, "severity": "critical"},
           "annotations": {"summary": format!("alert {fingerprint}"),
                           "description": "z".repeat(4_000)}})
}

/// The titles of the incidents of `team` (the alerts' team), sorted.
async fn alert_incidents(test: &TestApp, team: Uuid) -> Vec<String> {
    let list = test.get(&format!("/api/v1/incidents?team_id={team}")).await;
    let mut titles: Vec<String> = list
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|i| i["title"].as_str())
        .map(str::to_owned)
        .collect();
    titles.sort();
    titles
}

#[tokio::test]
async fn alerts_not_stored_on_a_full_disk_answer_503_and_their_resend_stores_them() {
    let (test, disk) = match node_on_a_small_disk().await {
        Ok(node) => node,
        Err(why) => panic!("this test mounts a small tmpfs and needs root: {why}"),
    };
    let team = test.team("disk").await;
    let alerting = test.team("alerting").await;
    let source = test
        .post(
            "/api/v1/sources",
            json!({"team_id": alerting, "type": "alertmanager", "name": "am"}),
        )
        .await;
    let url = source["ingest_url"].as_str().unwrap().to_owned();
    let known = json!({"version": "4", "alerts": [firing("known")]});
    let answer = test.send_alert(&url, known).await;
    assert_eq!(answer.status, 202, "{answer:?}");

    let filler = fill_until_refused(&test, &disk, team).await;
    // Alertmanager's body: the alert it sent before (stored, unchanged) and two new ones.
    let body =
        json!({"version": "4", "alerts": [firing("known"), firing("new-1"), firing("new-2")]});
    let answer = test.send_alert(&url, body.clone()).await;
    assert_eq!(
        (answer.status, answer.code()),
        (503, "not_stored"),
        "{answer:?}"
    );
    let alerts = answer.body["alerts"]
        .as_array()
        .expect("one answer per alert");
    assert_eq!(alerts.len(), 3, "{answer:?}");
    assert_eq!(
        (
            alerts[0]["dedup_key"].as_str(),
            alerts[0]["action"].as_str()
        ),
        (Some("known"), Some("unchanged")),
        "{answer:?}"
    );
    // Each new alert is either stored whole or reported not stored, never half of it.
    let mut stored = vec!["alert known".to_owned()];
    let mut failed = 0;
    for alert in &alerts[1..] {
        let key = alert["dedup_key"].as_str().unwrap();
        match alert["action"].as_str() {
            Some("failed") => {
                failed += 1;
                assert!(alert["error"]["code"].is_string(), "{answer:?}");
            }
            Some("opened") => stored.push(format!("alert {key}")),
            other => panic!("{key}: {other:?} in {answer:?}"),
        }
    }
    assert!(failed > 0, "{answer:?}");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{failed} of 3 alerts could not be stored")),
        "{answer:?}"
    );
    stored.sort();
    assert_eq!(alert_incidents(&test, alerting).await, stored);

    // Alertmanager resends on 5xx; once there is space the resend stores every alert once.
    space_returns(&test, filler).await;
    let answer = test.send_alert(&url, body).await;
    assert_eq!(answer.status, 202, "{answer:?}");
    let actions: Vec<&str> = answer.body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.iter().filter(|a| **a == "opened").count(), failed);
    assert_eq!(
        alert_incidents(&test, alerting).await,
        ["alert known", "alert new-1", "alert new-2"]
    );
}
