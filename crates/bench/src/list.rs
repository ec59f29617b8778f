//! `--list-incidents N`: the incidents list at N incidents (issue #19: it must stay fast
//! at 100,000). Loads them through ingest in large Alertmanager bodies (group commit
//! writes them in batches; the engine idles on a wrong password), then times
//! `GET /api/v1/incidents`: the first page, every page walked with the `Link` cursor,
//! and searches by title and by attribute.

use std::time::Instant;

use crate::server::{Knobs, Server};
use crate::{emulator_config, ingest, Cli, SYNC_USER};
use snowbound_emulator::Emulator;

const PAGE: usize = 1000;

pub async fn run(
    cli: &Cli,
    binary: &std::path::Path,
    extra_env: Vec<(String, String)>,
    count: usize,
) -> anyhow::Result<()> {
    let emulator = Emulator::start(emulator_config(cli, 0)).await?;
    let knobs = Knobs {
        concurrency: cli.sn_concurrency[0],
        rate_limit: cli.rate_limit,
        extra_env,
    };
    let server = Server::start(binary, &knobs).await?;
    let (url, _) = server
        .set_up(
            &emulator.base_url(),
            (SYNC_USER.0, "wrong-password"),
            "alertmanager",
        )
        .await?;
    let per_body = cli.alerts_per_body.max(500);
    let urls = [url.clone()];
    let loaded = ingest::run(
        std::slice::from_ref(&server),
        &urls,
        &cli.name,
        count,
        per_body,
        cli.concurrency,
    )
    .await?;
    println!(
        "loaded {} incidents in {:.1} s ({:.0}/s)",
        loaded.alerts,
        loaded.seconds,
        loaded.rate()
    );

    let (_, first) = timed(&server, &format!("/api/v1/incidents?limit={PAGE}")).await?;
    println!("first page of {PAGE}: {first:.1} ms");
    let mut next = Some(format!("/api/v1/incidents?limit={PAGE}"));
    let (mut seen, mut times) = (0, Vec::new());
    while let Some(path) = next {
        let start = Instant::now();
        let (n, after) = server.page(&path).await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        seen += n;
        next = after;
    }
    times.sort_by(f64::total_cmp);
    println!(
        "walked {seen} incidents in {} pages of {PAGE}: page p50 {:.1} p99 {:.1} max {:.1} ms \
         (the last page as fast as the first: keyset, not OFFSET)",
        times.len(),
        times[times.len() / 2],
        times[(times.len() * 99 / 100).min(times.len() - 1)],
        times[times.len() - 1],
    );
    // Matching every row ends at the page's limit; matching few or none reads the table.
    for q in [
        "bench",
        "severity=critical",
        "bench%207",
        "needle-not-there",
    ] {
        let path = format!("/api/v1/incidents?limit=100&q={q}");
        let (n, ms) = timed(&server, &path).await?;
        println!("search q={q}: {n} on the first page in {ms:.1} ms");
    }
    server.stop()?;
    emulator.shutdown().await;
    Ok(())
}

async fn timed(server: &Server, path: &str) -> anyhow::Result<(usize, f64)> {
    let start = Instant::now();
    let (n, _) = server.page(path).await?;
    Ok((n, start.elapsed().as_secs_f64() * 1000.0))
}
