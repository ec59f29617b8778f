//! The physical limit: the emulator's own rate for the calls a run needs (creates and
//! patches shaped like the engine's, in the same proportion) from a plain HTTP loop
//! with the same number of calls in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct RawResult {
    pub calls: usize,
    pub seconds: f64,
}

impl RawResult {
    pub fn rate(&self) -> f64 {
        self.calls as f64 / self.seconds.max(1e-9)
    }
}

/// `creates` creates, then `patches` patches spread over the created records.
pub async fn measure(
    base: &str,
    user: (&str, &str),
    creates: usize,
    patches: usize,
    concurrency: usize,
) -> anyhow::Result<RawResult> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .pool_idle_timeout(Duration::from_secs(15))
        .build()?;
    let user = (user.0.to_owned(), user.1.to_owned());
    let ids = Arc::new(std::sync::Mutex::new(Vec::with_capacity(creates)));
    let started = Instant::now();
    let table = format!("{base}/api/now/table/incident?sysparm_exclude_reference_link=true");
    {
        let (client, table, user, ids) = (client.clone(), table.clone(), user.clone(), ids.clone());
        run(creates, concurrency, move |i| {
            let (client, table, user, ids) = (client.clone(), table.clone(), user.clone(), ids.clone());
            async move {
                let body = json!({
                    "short_description": format!("raw incident {i}"),
                    "description": format!("raw incident {i}\n\nSnowbound: http://127.0.0.1:8080/incidents/{i}"),
                    "correlation_id": format!("raw-{i}"),
                    "correlation_display": "Snowbound",
                    "state": "1",
                    "urgency": "1",
                });
                let resp = client.post(&table).basic_auth(&user.0, Some(&user.1)).json(&body).send().await?;
                anyhow::ensure!(resp.status() == 201, "raw create answered {}", resp.status());
                let v: Value = resp.json().await?;
                let id = v["result"]["sys_id"].as_str().unwrap_or_default().to_owned();
                ids.lock().expect("ids").push(id);
                Ok(())
            }
        })
        .await?;
    }
    let ids: Arc<Vec<String>> = Arc::new(std::mem::take(&mut *ids.lock().expect("ids")));
    if patches > 0 && !ids.is_empty() {
        let base = format!("{base}/api/now/table/incident");
        run(patches, concurrency, move |i| {
            let (client, base, user) = (client.clone(), base.clone(), user.clone());
            // Never two patches of one record in flight: the engine does not do that either.
            let id = ids[i % ids.len()].clone();
            let urgency = ["2", "3", "1"][(i / ids.len()) % 3];
            async move {
                let url = format!("{base}/{id}?sysparm_exclude_reference_link=true");
                let resp = client
                    .patch(&url)
                    .basic_auth(&user.0, Some(&user.1))
                    .json(&json!({ "urgency": urgency }))
                    .send()
                    .await?;
                anyhow::ensure!(resp.status() == 200, "raw patch answered {}", resp.status());
                let _ = resp.bytes().await?;
                Ok(())
            }
        })
        .await?;
    }
    Ok(RawResult {
        calls: creates + patches,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn run<F, Fut>(count: usize, concurrency: usize, f: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let next = Arc::new(AtomicUsize::new(0));
    let f = Arc::new(f);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (next, f) = (next.clone(), f.clone());
        workers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(());
                }
                f(i).await?;
            }
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(())
}
