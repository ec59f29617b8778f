//! The alert storm: N incidents × M changes sent to `POST /ingest/{secret}` by C
//! workers, optionally paced to a total rate. Each worker owns a fixed set of incidents,
//! so the changes of one incident are sent strictly in order (the final state is known).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

/// The severities cycle with period three, so a request carrying a stale value can
/// rarely be mistaken for a newer change (see `track.rs`).
const SEVERITIES: [(&str, u8); 3] = [("critical", b'1'), ("warning", b'2'), ("minor", b'3')];
pub const STATE_OPEN: u8 = b'1';
pub const STATE_RESOLVED: u8 = b'6';

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    /// Change j of every incident before change j+1 of any: changes to one incident
    /// are far apart, so each tends to cost one ServiceNow call.
    RoundRobin,
    /// All changes of an incident back to back: a burst the engine should coalesce.
    Burst,
}

/// What ServiceNow should hold after change `j` of `m`: (urgency, state).
pub fn expected(j: usize, m: usize) -> (u8, u8) {
    if m >= 2 && j == m - 1 {
        (SEVERITIES[(m - 2) % 3].1, STATE_RESOLVED)
    } else {
        (SEVERITIES[j % 3].1, STATE_OPEN)
    }
}

fn body(run: &str, incident: usize, j: usize, m: usize) -> Value {
    let key = format!("{run}-{incident}");
    if m >= 2 && j == m - 1 {
        json!({"dedup_key": key, "status": "resolved"})
    } else {
        json!({
            "dedup_key": key,
            "title": format!("bench {run} incident {incident}"),
            "severity": SEVERITIES[j % 3].0,
            "attributes": {"change": j},
        })
    }
}

/// Send and acknowledgement times (µs since the epoch; 0 = not yet) of every change,
/// and which incident id Snowbound gave each of our incidents.
pub struct Ledger {
    pub incidents: usize,
    pub changes: usize,
    pub sent: Vec<AtomicI64>,
    pub acked: Vec<AtomicI64>,
    pub ids: Mutex<HashMap<String, usize>>,
    pub ingested: AtomicU64,
    pub errors: AtomicU64,
    pub ingest_micros: Mutex<Vec<i64>>,
}

impl Ledger {
    pub fn new(incidents: usize, changes: usize) -> Self {
        let n = incidents * changes;
        Ledger {
            incidents,
            changes,
            sent: (0..n).map(|_| AtomicI64::new(0)).collect(),
            acked: (0..n).map(|_| AtomicI64::new(0)).collect(),
            ids: Mutex::new(HashMap::with_capacity(incidents)),
            ingested: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            ingest_micros: Mutex::new(Vec::with_capacity(n)),
        }
    }

    pub fn sent(&self, incident: usize, j: usize) -> i64 {
        self.sent[incident * self.changes + j].load(Ordering::Acquire)
    }

    pub fn acked(&self, incident: usize, j: usize) -> i64 {
        self.acked[incident * self.changes + j].load(Ordering::Acquire)
    }
}

pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

pub struct Storm {
    pub ingest_url: String,
    pub run: String,
    pub concurrency: usize,
    /// Total changes per second; `None` = as fast as the server answers.
    pub rate: Option<f64>,
    pub order: Order,
}

impl Storm {
    /// Sends everything; returns when the last change is acknowledged.
    pub async fn run(self, ledger: Arc<Ledger>) -> anyhow::Result<()> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(self.concurrency)
            .timeout(Duration::from_secs(120))
            .build()?;
        let workers = self.concurrency.max(1).min(ledger.incidents.max(1));
        let start = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..workers {
            let mine: Vec<usize> = (w..ledger.incidents).step_by(workers).collect();
            let m = ledger.changes;
            let items: Vec<(usize, usize)> = match self.order {
                Order::RoundRobin => (0..m)
                    .flat_map(|j| mine.iter().map(move |&i| (i, j)))
                    .collect(),
                Order::Burst => mine
                    .iter()
                    .flat_map(|&i| (0..m).map(move |j| (i, j)))
                    .collect(),
            };
            // Each worker carries 1/workers of the rate, starting staggered.
            let interval = self
                .rate
                .map(|r| Duration::from_secs_f64(workers as f64 / r.max(0.001)));
            let offset = self
                .rate
                .map(|r| Duration::from_secs_f64(w as f64 / r.max(0.001)));
            let (client, url, run, ledger) = (
                client.clone(),
                self.ingest_url.clone(),
                self.run.clone(),
                Arc::clone(&ledger),
            );
            tasks.spawn(async move {
                for (n, (incident, j)) in items.into_iter().enumerate() {
                    if let (Some(interval), Some(offset)) = (interval, offset) {
                        tokio::time::sleep_until(start + offset + interval * n as u32).await;
                    }
                    send(&client, &url, &run, &ledger, incident, j).await;
                }
            });
        }
        while let Some(done) = tasks.join_next().await {
            done?;
        }
        Ok(())
    }
}

async fn send(
    client: &reqwest::Client,
    url: &str,
    run: &str,
    ledger: &Ledger,
    incident: usize,
    j: usize,
) {
    let slot = incident * ledger.changes + j;
    let body = body(run, incident, j, ledger.changes);
    // A change refused (it should not be) is sent again: the run measures delivery
    // of every change, so none may go missing.
    for attempt in 0..20 {
        let sent = now_micros();
        if attempt == 0 {
            ledger.sent[slot].store(sent, Ordering::Release);
        }
        let answer = client.post(url).json(&body).send().await;
        let ok = match answer {
            Ok(resp) if resp.status().as_u16() == 202 => {
                let acked = now_micros();
                let value: Value = resp.json().await.unwrap_or(Value::Null);
                if let Some(id) = value["incident_id"].as_str() {
                    if j == 0 {
                        ledger
                            .ids
                            .lock()
                            .expect("ids")
                            .insert(id.to_owned(), incident);
                    }
                }
                ledger.acked[slot].store(acked, Ordering::Release);
                ledger
                    .ingest_micros
                    .lock()
                    .expect("ingest")
                    .push(acked - sent);
                ledger.ingested.fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                if ledger.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("ingest answered {status}: {text}");
                }
                false
            }
            Err(e) => {
                if ledger.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("ingest failed: {e}");
                }
                false
            }
        };
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
    }
}
