//! `snowbound-bench`: how fast ServiceNow follows the incidents, and at what cost.
//!
//! For every combination of `--latency-ms` and `--sn-concurrency` (× `--repeat`) it
//! starts the ServiceNow emulator (in this process) and a real `snowbound serve` (a child
//! process on a temporary SQLite database), measures the emulator's raw rate for the
//! same calls, drives the alert storm through `POST /ingest/{secret}`, and follows the
//! emulator's request log until ServiceNow holds the final state of every incident.
//! Writes `report.md` and one SVG per run into `--out`.

mod drive;
mod ingest;
mod list;
mod raw;
mod report;
mod server;
mod track;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use snowbound_emulator::{ApiSemaphores, Emulator, EmulatorConfig, User};

use drive::{now_micros, Ledger, Order, Storm};
use report::{Config, RunResult, Series};
use server::{Knobs, ProcStats, Server};
use track::Tracker;

/// The user Snowbound calls ServiceNow as; the raw loop uses `admin`, which has no rate
/// limit, so the physical limit is the emulator's and not the instance rule's.
const SYNC_USER: (&str, &str) = ("snowbound", "bench-password");
const RAW_USER: (&str, &str) = ("admin", "admin");

#[derive(Parser, Debug)]
#[command(
    version,
    about = "Benchmark Snowbound's ServiceNow sync against the emulator"
)]
struct Cli {
    /// Incidents to open.
    #[arg(long, default_value_t = 1000)]
    incidents: usize,
    /// Changes per incident: the open, severity changes, and (when ≥ 2) the resolve last.
    #[arg(long, default_value_t = 2)]
    changes: usize,
    /// Ingest requests in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Total changes per second to send; 0 = as fast as the server accepts them.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    #[arg(long, value_enum, default_value_t = Order::RoundRobin)]
    order: Order,
    /// Latency the emulator adds to every Table API call, like a real instance (list).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    latency_ms: Vec<u64>,
    /// SNOWBOUND_SERVICENOW_CONCURRENCY: calls in flight per integration (list).
    #[arg(long, value_delimiter = ',', default_value = "8")]
    sn_concurrency: Vec<usize>,
    /// SNOWBOUND_SERVICENOW_RATE_LIMIT: Snowbound's own limit, calls per second.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// The instance's rate limit for Snowbound's user (the emulator answers 429 above it).
    #[arg(long)]
    instance_rate_limit: Option<u32>,
    /// The instance's API_INT semaphores: Table API requests it runs at once; above
    /// them and `--instance-queue`, it answers 429 without Retry-After.
    #[arg(long)]
    instance_semaphores: Option<usize>,
    /// Requests the instance queues for a semaphore (ServiceNow's default is 50; 0 makes
    /// `--instance-semaphores` a hard cap).
    #[arg(long, default_value_t = 0)]
    instance_queue: usize,
    /// At most this many calls in the raw-rate measurement.
    #[arg(long, default_value_t = 20_000)]
    raw_calls: usize,
    /// Runs of each configuration (to see the spread).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Extra environment for `snowbound serve`, KEY=VALUE (repeatable).
    #[arg(long = "env")]
    env: Vec<String>,
    /// Name prefix of the runs in the report.
    #[arg(long, default_value = "run")]
    name: String,
    #[arg(long, default_value = "bench-out")]
    out: PathBuf,
    /// The `snowbound` binary (default: next to this one, else on PATH).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Measure the engine alone: ingest everything while the integration is failing
    /// (wrong password, 401), then fix the password and time the backlog's drain.
    #[arg(long)]
    backlog: bool,
    /// Measure ingest alone (`--incidents` alerts, `--concurrency` senders; the engine
    /// idles on a wrong password) and print the rate; no report.
    #[arg(long)]
    ingest_only: bool,
    /// With `--ingest-only`: alerts per request; above 1 they go as Alertmanager bodies.
    #[arg(long, default_value_t = 1)]
    alerts_per_body: usize,
    /// With `--ingest-only`: this many `snowbound serve` nodes on the one PostgreSQL
    /// database of `--env SNOWBOUND_DATABASE_URL=…`, the senders spread over them.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Measure the incidents list: load this many incidents (Alertmanager bodies of
    /// `--alerts-per-body`, at least 500, through ingest), then time pages walked with
    /// the `Link` cursor and searches; no report.
    #[arg(long)]
    list_incidents: Option<usize>,
    /// Give up when nothing reaches ServiceNow for this long.
    #[arg(long, default_value_t = 60)]
    stall_timeout_s: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(
        cli.incidents > 0 && cli.changes > 0,
        "--incidents and --changes must be > 0"
    );
    let binary = cli
        .server_bin
        .clone()
        .unwrap_or_else(server::default_binary);
    std::fs::create_dir_all(&cli.out)?;
    let extra_env = cli
        .env
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--env {kv}: expected KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(count) = cli.list_incidents {
        return list::run(&cli, &binary, extra_env, count).await;
    }
    if cli.nodes > 1
        && !(cli.ingest_only
            && extra_env
                .iter()
                .any(|(k, v)| k == "SNOWBOUND_DATABASE_URL" && v.starts_with("postgres")))
    {
        anyhow::bail!(
            "--nodes needs --ingest-only and --env SNOWBOUND_DATABASE_URL=postgres://… \
             (SQLite is one process)"
        );
    }
    if cli.ingest_only {
        return ingest_only(&cli, &binary, extra_env).await;
    }
    let mut results = Vec::new();
    for &latency_ms in &cli.latency_ms {
        for &sn_concurrency in &cli.sn_concurrency {
            for repeat in 0..cli.repeat {
                let name = format!(
                    "{}-lat{latency_ms}-c{sn_concurrency}{}",
                    cli.name,
                    if cli.repeat > 1 {
                        format!("-{}", repeat + 1)
                    } else {
                        String::new()
                    }
                );
                let config = Config {
                    incidents: cli.incidents,
                    changes: cli.changes,
                    ingest_concurrency: cli.concurrency,
                    rate: (cli.rate > 0.0).then_some(cli.rate),
                    order: if cli.backlog {
                        format!("{:?}, backlog", cli.order)
                    } else {
                        format!("{:?}", cli.order)
                    },
                    latency_ms,
                    sn_concurrency,
                    rate_limit: cli.rate_limit,
                    instance_rate_limit: cli.instance_rate_limit,
                };
                let knobs = Knobs {
                    concurrency: sn_concurrency,
                    rate_limit: cli.rate_limit,
                    extra_env: extra_env.clone(),
                };
                let result = one_run(&cli, &binary, name, config, knobs).await?;
                std::fs::write(
                    cli.out.join(format!("{}.svg", result.name)),
                    report::svg(&result),
                )?;
                summary(&result);
                results.push(result);
            }
        }
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let md = report::markdown(&results, &command);
    std::fs::write(cli.out.join("report.md"), &md)?;
    println!("report: {}", cli.out.join("report.md").display());
    if results.iter().any(|r| !r.complete) {
        anyhow::bail!("some runs did not complete; see the report");
    }
    Ok(())
}

async fn ingest_only(
    cli: &Cli,
    binary: &std::path::Path,
    extra_env: Vec<(String, String)>,
) -> anyhow::Result<()> {
    let kind = if cli.alerts_per_body > 1 {
        "alertmanager"
    } else {
        "webhook"
    };
    for repeat in 0..cli.repeat {
        let emulator = Emulator::start(emulator_config(cli, 0)).await?;
        let knobs = Knobs {
            concurrency: cli.sn_concurrency[0],
            rate_limit: cli.rate_limit,
            extra_env: extra_env.clone(),
        };
        let first = Server::start(binary, &knobs).await?;
        let (url, _) = first
            .set_up(&emulator.base_url(), (SYNC_USER.0, "wrong-password"), kind)
            .await?;
        let path = url[url.find("/ingest/").context("an ingest URL")?..].to_owned();
        let mut servers = vec![first];
        // The others start once the first has migrated the database and set it up.
        for _ in 1..cli.nodes {
            servers.push(Server::start(binary, &knobs).await?);
        }
        let urls: Vec<String> = servers.iter().map(|s| format!("{}{path}", s.url)).collect();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let run = format!("{}-{}-{}", cli.name, repeat + 1, now_micros());
        let result = ingest::run(
            &servers,
            &urls,
            &run,
            cli.incidents,
            cli.alerts_per_body,
            cli.concurrency,
        )
        .await?;
        for server in servers {
            server.stop()?;
        }
        emulator.shutdown().await;
        let ms = |q| report::percentile(&result.micros, q) as f64 / 1000.0;
        println!(
            "{}-{}: {} alerts in {} requests of {} ({kind}) from {} senders to {} node(s): {:.0} alerts/s in {:.2} s, \
             answer p50 {:.1} p99 {:.1} ms, server CPU {:.1} s ({:.0} µs/alert), load before {}",
            cli.name,
            repeat + 1,
            result.alerts,
            result.requests,
            cli.alerts_per_body,
            cli.concurrency,
            cli.nodes,
            result.rate(),
            result.seconds,
            ms(0.5),
            ms(0.99),
            result.server_cpu_s,
            result.server_cpu_s * 1e6 / result.alerts as f64,
            load.trim(),
        );
    }
    Ok(())
}

fn summary(r: &RunResult) {
    println!(
        "{}: sync {:.0}/s (raw {:.0}/s, {:.0} %), ingest {:.0}/s, {:.3} calls/change (max {}/incident), latency p50 {:.1} p99 {:.1} max {:.1} ms, peak RSS {:.1} MB, CPU {:.1} s{}",
        r.name, r.sync_rate, r.raw_rate, r.ratio() * 100.0, r.ingest_rate, r.calls_per_change(), r.calls_per_incident_max,
        r.latency_ms(0.5), r.latency_ms(0.99), r.latency_ms(1.0), r.peak_rss_mb, r.server_cpu_s,
        if r.complete { "" } else { " INCOMPLETE" }
    );
}

fn emulator_config(cli: &Cli, latency_ms: u64) -> EmulatorConfig {
    let sync_user = User::new(SYNC_USER.0, SYNC_USER.1, &["itil"])
        .with_rate_limit(cli.instance_rate_limit, None);
    EmulatorConfig {
        users: vec![User::new(RAW_USER.0, RAW_USER.1, &["admin"]), sync_user],
        latency: Duration::from_millis(latency_ms),
        api_semaphores: cli.instance_semaphores.map(|slots| ApiSemaphores {
            slots,
            queue: cli.instance_queue,
        }),
        ..EmulatorConfig::default()
    }
}

async fn one_run(
    cli: &Cli,
    binary: &std::path::Path,
    name: String,
    config: Config,
    knobs: Knobs,
) -> anyhow::Result<RunResult> {
    let total = cli.incidents * cli.changes;
    // The physical limit first, on an emulator of its own, with nothing else running.
    let raw = {
        let emulator = Emulator::start(emulator_config(cli, config.latency_ms)).await?;
        let calls = total.min(cli.raw_calls).max(1);
        let creates = calls.div_ceil(cli.changes).min(cli.incidents).max(1);
        let patches = calls.saturating_sub(creates);
        let raw = raw::measure(
            &emulator.base_url(),
            RAW_USER,
            creates,
            patches,
            config.sn_concurrency,
        )
        .await?;
        emulator.shutdown().await;
        raw
    };

    let emulator = Emulator::start(emulator_config(cli, config.latency_ms)).await?;
    let server = Server::start(binary, &knobs).await?;
    let password = if cli.backlog {
        "wrong-password"
    } else {
        SYNC_USER.1
    };
    let (ingest_url, integration_id) = server
        .set_up(&emulator.base_url(), (SYNC_USER.0, password), "webhook")
        .await?;
    let before = server.stats();
    let bench_before = ProcStats::own();

    let ledger = Arc::new(Ledger::new(cli.incidents, cli.changes));
    let first_send = now_micros();
    let mut started = first_send;
    let storm = Storm {
        ingest_url,
        run: format!("{name}-{first_send}"),
        concurrency: cli.concurrency,
        rate: config.rate,
        order: cli.order,
    };
    let mut storm = tokio::spawn(storm.run(Arc::clone(&ledger)));
    if cli.backlog {
        (&mut storm).await??;
        // The 401s that stopped the integration are not part of the drain.
        let refused = emulator.take_requests().len();
        println!("{name}: {total} changes ingested while failing ({refused} calls refused); fixing the password");
        started = now_micros();
        server.set_password(&integration_id, SYNC_USER.1).await?;
    }

    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} changes in ServiceNow {msg}",
        )?
        .progress_chars("=> "),
    );
    bar.set_prefix(name.clone());
    let mut tracker = Tracker::new(emulator.clone(), Arc::clone(&ledger));
    let mut last_progress = (Instant::now(), 0usize);
    let mut complete = false;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        tracker.poll();
        let delivered = tracker.delivered();
        bar.set_position(delivered as u64);
        bar.set_message(format!(
            "| ingested {} | calls {}",
            ledger.ingested.load(std::sync::atomic::Ordering::Relaxed),
            tracker.calls
        ));
        if tracker.all_done() {
            complete = true;
            break;
        }
        if delivered != last_progress.1 || !storm.is_finished() {
            last_progress = (Instant::now(), delivered);
        } else if last_progress.0.elapsed() > Duration::from_secs(cli.stall_timeout_s) {
            bar.println(format!(
                "{name}: nothing reached ServiceNow for {} s; {} requests unmatched; giving up",
                cli.stall_timeout_s,
                tracker.unmatched()
            ));
            break;
        }
    }
    bar.finish();
    let after = server.stats();
    let bench_after = ProcStats::own();
    if !cli.backlog {
        storm.await??;
    }
    // Late calls (there should be none) still count against calls per change.
    tokio::time::sleep(Duration::from_millis(200)).await;
    tracker.poll();
    server.stop()?;
    emulator.shutdown().await;

    let acked: Vec<i64> = ledger
        .acked
        .iter()
        .map(|a| a.load(std::sync::atomic::Ordering::Relaxed))
        .filter(|&a| a != 0)
        .collect();
    let last_ack = acked.iter().copied().max().unwrap_or(first_send);
    let mut ingest_micros = std::mem::take(&mut *ledger.ingest_micros.lock().expect("ingest"));
    ingest_micros.sort_unstable();
    let end = if complete {
        tracker.last_delivery
    } else {
        now_micros()
    };
    let seconds = (end - started) as f64 / 1e6;
    let (_, max_per_incident) = tracker.calls_per_incident();
    let mut latencies = std::mem::take(&mut tracker.latencies);
    latencies.sort_unstable();
    let mut latencies_from_ack = std::mem::take(&mut tracker.latencies_from_ack);
    latencies_from_ack.sort_unstable();
    let rel = |v: &[i64]| v.iter().map(|t| t - started).collect::<Vec<_>>();
    Ok(RunResult {
        name,
        complete,
        changes: total,
        delivered: tracker.delivered(),
        ingest_rate: acked.len() as f64 / ((last_ack - first_send) as f64 / 1e6).max(1e-9),
        sync_rate: tracker.delivered() as f64 / seconds.max(1e-9),
        calls: tracker.calls,
        failed_calls: tracker.failed_calls,
        rate_limited: tracker.rate_limited,
        max_calls_per_second: tracker.max_per_second(),
        calls_per_incident_max: max_per_incident,
        ingest_p50_ms: report::percentile(&ingest_micros, 0.5) as f64 / 1000.0,
        ingest_p99_ms: report::percentile(&ingest_micros, 0.99) as f64 / 1000.0,
        peak_rss_mb: after.peak_rss_kb as f64 / 1024.0,
        server_cpu_s: after.cpu_seconds - before.cpu_seconds,
        bench_cpu_s: bench_after.cpu_seconds - bench_before.cpu_seconds,
        seconds,
        raw_rate: raw.rate(),
        raw_calls: raw.calls,
        series: Series {
            acked: rel(&acked),
            delivered: rel(&tracker.delivered_times),
            calls: rel(&tracker.call_times),
            latencies,
            latencies_from_ack,
        },
        config,
    })
}
