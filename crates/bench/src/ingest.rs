//! `--ingest-only`: the ingest path alone, as issue #16's targets count it. C senders
//! post alerts to `POST /ingest/{secret}` as fast as they are answered, one alert per
//! request (a webhook source) or `--alerts-per-body` per Alertmanager body. Every alert
//! opens an incident linked to an `always` integration whose password is wrong, so the
//! engine stops after its first 401 and the server's CPU goes to ingest.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::Server;

pub struct IngestResult {
    pub alerts: usize,
    pub requests: usize,
    pub seconds: f64,
    /// Answer times of the requests, sorted, µs.
    pub micros: Vec<i64>,
    pub server_cpu_s: f64,
}

impl IngestResult {
    pub fn rate(&self) -> f64 {
        self.alerts as f64 / self.seconds.max(1e-9)
    }
}

fn body(run: &str, first: usize, count: usize) -> Value {
    if count == 1 {
        return json!({"dedup_key": format!("{run}-{first}"), "title": format!("bench {first}"),
                      "severity": "critical"});
    }
    let alerts: Vec<Value> = (first..first + count)
        .map(|i| {
            json!({"status": "firing", "fingerprint": format!("{run}-{i}"),
                   "labels": {"alertname": format!("bench {i}"), "severity": "critical"}})
        })
        .collect();
    json!({"version": "4", "status": "firing", "alerts": alerts})
}

/// Sender `n` posts to `urls[n % urls.len()]`; the server CPU is that of all `servers`.
pub async fn run(
    servers: &[Server],
    urls: &[String],
    run: &str,
    alerts: usize,
    per_body: usize,
    senders: usize,
) -> anyhow::Result<IngestResult> {
    let per_body = per_body.max(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(senders)
        .timeout(Duration::from_secs(120))
        .build()?;
    // Every body is built and serialised before the clock starts: the sender shares the
    // machine's cores with the server, and building JSON per request cost it as much CPU
    // as the server spent storing the alerts.
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..alerts)
            .step_by(per_body)
            .map(|first| serde_json::to_vec(&body(run, first, per_body.min(alerts - first))))
            .collect::<Result<_, _>>()?,
    );
    let next = Arc::new(AtomicUsize::new(0));
    let micros = Arc::new(Mutex::new(Vec::new()));
    let cpu = || servers.iter().map(|s| s.stats().cpu_seconds).sum::<f64>();
    let before = cpu();
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for sender in 0..senders.max(1) {
        let url = urls[sender % urls.len()].clone();
        let client = client.clone();
        let (next, micros, bodies) = (Arc::clone(&next), Arc::clone(&micros), Arc::clone(&bodies));
        tasks.spawn(async move {
            loop {
                let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let sent = Instant::now();
                let answer = client
                    .post(&url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                let status = answer.status();
                let text = answer.text().await?;
                anyhow::ensure!(status.as_u16() == 202, "ingest answered {status}: {text}");
                micros
                    .lock()
                    .expect("micros")
                    .push(sent.elapsed().as_micros() as i64);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let after = cpu();
    let mut micros = std::mem::take(&mut *micros.lock().expect("micros"));
    micros.sort_unstable();
    Ok(IngestResult {
        alerts,
        requests: micros.len(),
        seconds,
        micros,
        server_cpu_s: after - before,
    })
}
