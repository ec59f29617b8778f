//! Slow clients cannot stop alert intake: 1,200 connections that dribble a header line
//! at a time (more than the node has file descriptors for) are cut by the header
//! timeout and held to the connection cap, while `/healthz` and an alert still get in.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use snowbound_testkit::{eventually, ADMIN_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

const SLOW_CLIENTS: usize = 1_200;
/// Below SLOW_CLIENTS, as on a host with the common default of 1024.
const NODE_OPEN_FILES: usize = 1_024;
const GENEROUS: Duration = Duration::from_secs(45);

struct KilledOnDrop(Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn open_files_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Sends a request head one header line at a time until the server closes the
/// connection (answering true) or the test says stop (answering false).
async fn dribble(mut stream: TcpStream, stop: watch::Receiver<bool>) -> bool {
    if stream
        .write_all(b"POST /ingest/nothing HTTP/1.1\r\nHost: x\r\n")
        .await
        .is_err()
    {
        return true;
    }
    let mut buf = [0u8; 256];
    while !*stop.borrow() {
        if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
            return true;
        }
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // Whatever the server answers, the connection must still end.
            Ok(Ok(_)) | Err(_) => {}
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_stop_health_checks_or_alert_intake() {
    assert!(
        open_files_limit() > SLOW_CLIENTS + 200,
        "this test needs `ulimit -n` above {} for its own sockets",
        SLOW_CLIENTS + 200
    );
    let dir = tempfile::tempdir().unwrap();
    let port = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
    let _node = KilledOnDrop(
        Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {NODE_OPEN_FILES} && exec \"$0\" serve"))
            .arg(env!("CARGO_BIN_EXE_snowbound"))
            .env("SNOWBOUND_LISTEN", format!("127.0.0.1:{port}"))
            .env("SNOWBOUND_DATA_DIR", dir.path().join("data"))
            .env("SNOWBOUND_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SNOWBOUND_HTTP_HEADER_TIMEOUT_MS", "1000")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the snowbound binary starts"),
    );
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    eventually("the node answers /healthz", || async {
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let team: serde_json::Value = post("/api/v1/teams", json!({"name": "ops"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let source: serde_json::Value = post(
        "/api/v1/sources",
        json!({"team_id": team["id"], "type": "webhook", "name": "hook"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let ingest_url = source["ingest_url"].as_str().unwrap().to_owned();

    // One after the other, as a flood of simultaneous SYNs would mostly be dropped by
    // the kernel before the server saw them.
    let (stop, stopped) = watch::channel(false);
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..SLOW_CLIENTS {
        let address = format!("127.0.0.1:{port}");
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(address)).await {
            Ok(Ok(stream)) => {
                slow.spawn(dribble(stream, stopped.clone()));
            }
            // Not even let in: nothing for the server to close.
            _ => {
                slow.spawn(async { true });
            }
        }
    }

    let fresh = reqwest::Client::builder()
        .timeout(GENEROUS)
        .build()
        .unwrap();
    let health = fresh.get(format!("{base}/healthz")).send().await;
    assert!(
        health.as_ref().is_ok_and(|r| r.status().is_success()),
        "/healthz while slow clients hold connections: {health:?}"
    );
    let alert = fresh
        .post(&ingest_url)
        .json(&json!({"dedup_key": "k", "title": "still here", "severity": "minor"}))
        .send()
        .await;
    assert!(
        alert
            .as_ref()
            .is_ok_and(|r| r.status() == reqwest::StatusCode::ACCEPTED),
        "an alert while slow clients hold connections: {alert:?}"
    );

    let mut closed = 0;
    let deadline = Instant::now() + GENEROUS;
    while let Ok(Some(result)) = tokio::time::timeout_at(deadline.into(), slow.join_next()).await {
        closed += usize::from(result.unwrap());
    }
    let _ = stop.send(true);
    assert_eq!(
        closed, SLOW_CLIENTS,
        "every slow connection was closed by the server"
    );
}
