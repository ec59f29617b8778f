//! Measures create and patch throughput of the emulator over real HTTP.
//!
//! `cargo run --release -p snowbound-emulator --example loadgen -- [COUNT] [CONCURRENCY] [URL]`
//!
//! Without URL an emulator is started in-process on 127.0.0.1 (client and server then
//! share the machine's cores, as in a benchmark of Snowbound against the emulator).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use snowbound_emulator::{Emulator, EmulatorConfig};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(32);
    let (base, _emu) = match args.get(2) {
        Some(url) => (url.trim_end_matches('/').to_string(), None),
        None => {
            let emu = Emulator::start(EmulatorConfig::default())
                .await
                .expect("start");
            (emu.base_url(), Some(emu))
        }
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");

    let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(count)));
    let (c, b, ids2) = (client.clone(), base.clone(), ids.clone());
    let rate = run(count, concurrency, move |i| {
        let client = c.clone();
        let base = b.clone();
        let ids = ids2.clone();
        async move {
            let resp = client
                .post(format!("{base}/api/now/table/incident"))
                .basic_auth("admin", Some("admin"))
                .json(&json!({"short_description": format!("load {i}"), "correlation_id": format!("lg-{i}"), "urgency": "2"}))
                .send()
                .await
                .expect("create");
            assert_eq!(resp.status(), 201);
            let v: Value = resp.json().await.expect("json");
            let id = v["result"]["sys_id"].as_str().expect("sys_id").to_string();
            ids.lock().unwrap().push(id);
        }
    })
    .await;
    println!("create: {count} requests, concurrency {concurrency}: {rate:.0} req/s");

    let ids: Arc<Vec<String>> = Arc::new(std::mem::take(&mut *ids.lock().unwrap()));
    let rate = run(count, concurrency, move |i| {
        let client = client.clone();
        let base = base.clone();
        let id = ids[i % ids.len()].clone();
        async move {
            let resp = client
                .patch(format!("{base}/api/now/table/incident/{id}"))
                .basic_auth("admin", Some("admin"))
                .json(&json!({"state": "2", "work_notes": format!("patch {i}")}))
                .send()
                .await
                .expect("patch");
            assert_eq!(resp.status(), 200);
            let _ = resp.bytes().await;
        }
    })
    .await;
    println!("patch:  {count} requests, concurrency {concurrency}: {rate:.0} req/s");
}

/// Runs `count` calls of `f` with at most `concurrency` in flight; returns calls/second.
async fn run<F, Fut>(count: usize, concurrency: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let f = Arc::new(f);
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let next = next.clone();
            let f = f.clone();
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    f(i).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.expect("worker");
    }
    count as f64 / start.elapsed().as_secs_f64()
}
