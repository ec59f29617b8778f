//! The figures of a run, the Markdown report and a hand-written SVG chart (latency
//! distribution and throughput over time): a few polylines need no plotting crate.

use std::fmt::Write as _;

#[derive(Clone, Debug)]
pub struct Config {
    pub incidents: usize,
    pub changes: usize,
    pub ingest_concurrency: usize,
    pub rate: Option<f64>,
    pub order: String,
    pub latency_ms: u64,
    pub sn_concurrency: usize,
    pub rate_limit: Option<u32>,
    pub instance_rate_limit: Option<u32>,
}

#[derive(Clone, Debug, Default)]
pub struct Series {
    /// µs since the run's first send.
    pub acked: Vec<i64>,
    pub delivered: Vec<i64>,
    pub calls: Vec<i64>,
    /// Change → ServiceNow latencies, µs, sorted.
    pub latencies: Vec<i64>,
    /// From the ingest answer instead of the send, sorted.
    pub latencies_from_ack: Vec<i64>,
}

#[derive(Clone, Debug)]
pub struct RunResult {
    pub name: String,
    pub config: Config,
    pub complete: bool,
    pub changes: usize,
    pub delivered: usize,
    pub ingest_rate: f64,
    pub sync_rate: f64,
    pub calls: u64,
    pub failed_calls: u64,
    pub rate_limited: u64,
    pub max_calls_per_second: u32,
    pub calls_per_incident_max: u32,
    pub ingest_p50_ms: f64,
    pub ingest_p99_ms: f64,
    pub peak_rss_mb: f64,
    pub server_cpu_s: f64,
    pub bench_cpu_s: f64,
    pub seconds: f64,
    pub raw_rate: f64,
    pub raw_calls: usize,
    pub series: Series,
}

impl RunResult {
    pub fn calls_per_change(&self) -> f64 {
        self.calls as f64 / self.changes.max(1) as f64
    }

    pub fn ratio(&self) -> f64 {
        self.sync_rate / self.raw_rate.max(1e-9)
    }

    pub fn latency_ms(&self, q: f64) -> f64 {
        percentile(&self.series.latencies, q) as f64 / 1000.0
    }
}

pub fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "–".into())
}

pub fn markdown(results: &[RunResult], command: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# snowbound-bench report\n");
    let _ = writeln!(md, "Command: `{command}`\n");
    let _ = writeln!(
        md,
        "Machine: {} CPUs, load average at the end {}.\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        md,
        "| run | incidents × changes | order | rate | SN latency | SN conc. | limit | ingest/s | sync/s | raw/s | sync ÷ raw | calls/change | max calls/incident | p50 ms | p95 ms | p99 ms | max ms | max calls/s | 429s | peak RSS MB | server CPU s |"
    );
    let _ = writeln!(md, "|{}", "---|".repeat(21));
    for r in results {
        let c = &r.config;
        let _ = writeln!(
            md,
            "| {}{} | {} × {} | {} | {} | {} ms | {} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.3} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {:.1} | {:.1} |",
            r.name,
            if r.complete { "" } else { " (INCOMPLETE)" },
            c.incidents,
            c.changes,
            c.order,
            c.rate.map(|r| format!("{r:.0}/s")).unwrap_or_else(|| "max".into()),
            c.latency_ms,
            c.sn_concurrency,
            opt(c.rate_limit),
            r.ingest_rate,
            r.sync_rate,
            r.raw_rate,
            r.ratio(),
            r.calls_per_change(),
            r.calls_per_incident_max,
            r.latency_ms(0.50),
            r.latency_ms(0.95),
            r.latency_ms(0.99),
            r.latency_ms(1.0),
            r.max_calls_per_second,
            r.rate_limited,
            r.peak_rss_mb,
            r.server_cpu_s,
        );
    }
    for r in results {
        let c = &r.config;
        let _ = writeln!(md, "\n## {}\n", r.name);
        let _ = writeln!(
            md,
            "- workload: {} incidents × {} changes ({} changes), {} order, {} ingest workers, {}",
            c.incidents,
            c.changes,
            r.changes,
            c.order,
            c.ingest_concurrency,
            c.rate
                .map(|r| format!("paced at {r:.0} changes/s"))
                .unwrap_or_else(|| "unpaced".into())
        );
        let _ = writeln!(
            md,
            "- ServiceNow: emulator latency {} ms, Snowbound per-integration concurrency {}, Snowbound rate limit {}, instance rate limit {}",
            c.latency_ms, c.sn_concurrency, opt(c.rate_limit.map(|l| format!("{l}/s"))), opt(c.instance_rate_limit.map(|l| format!("{l}/s")))
        );
        let _ = writeln!(
            md,
            "- ingest: {:.0} changes/s, answer p50 {:.2} ms, p99 {:.2} ms",
            r.ingest_rate, r.ingest_p50_ms, r.ingest_p99_ms
        );
        let _ = writeln!(
            md,
            "- end to end: {} of {} changes in ServiceNow after {:.2} s: {:.0} changes/s",
            r.delivered, r.changes, r.seconds, r.sync_rate
        );
        let _ = writeln!(
            md,
            "- physical limit: emulator raw rate {:.0} calls/s ({} calls, same mix, same concurrency); Snowbound reaches {:.0} % of it",
            r.raw_rate,
            r.raw_calls,
            r.ratio() * 100.0
        );
        let _ = writeln!(
            md,
            "- ServiceNow calls: {} ({:.3} per change; at most {} for one incident; {} failed, {} answered 429; at most {} in one calendar second)",
            r.calls, r.calls_per_change(), r.calls_per_incident_max, r.failed_calls, r.rate_limited, r.max_calls_per_second
        );
        let _ = writeln!(
            md,
            "- change → ServiceNow (from the ingest request's send to the emulator's receive; in a backlog run this includes the outage): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            r.latency_ms(0.5), r.latency_ms(0.95), r.latency_ms(0.99), r.latency_ms(1.0)
        );
        let from_ack = |q| percentile(&r.series.latencies_from_ack, q) as f64 / 1000.0;
        let _ = writeln!(
            md,
            "- the same from the ingest answer (the change committed): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            from_ack(0.5), from_ack(0.95), from_ack(0.99), from_ack(1.0)
        );
        let _ = writeln!(
            md,
            "- server: peak RSS {:.1} MB, CPU {:.2} s ({:.2} ms per change); bench process (driver + emulator) CPU {:.2} s",
            r.peak_rss_mb,
            r.server_cpu_s,
            r.server_cpu_s * 1000.0 / r.changes.max(1) as f64,
            r.bench_cpu_s
        );
        let _ = writeln!(md, "\n![{0}]({0}.svg)", r.name);
    }
    md
}

const W: f64 = 960.0;
const H: f64 = 340.0;

pub fn svg(r: &RunResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14" font-weight="bold">{}</text>"#,
        escape(&r.name)
    );
    let panel = |x, w| Panel {
        x,
        y: 40.0,
        w,
        h: 250.0,
    };
    latency_panel(&mut s, r, panel(50.0, 380.0));
    throughput_panel(&mut s, r, panel(520.0, 400.0));
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A plot's frame in SVG coordinates.
#[derive(Clone, Copy)]
struct Panel {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

fn axes(s: &mut String, p: Panel, title: &str, xlabel: &str, ylabel: &str) {
    let Panel { x, y, w, h } = p;
    let _ = writeln!(
        s,
        r##"<rect x="{x}" y="{y}" width="{w}" height="{h}" fill="none" stroke="#999"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        x + w / 2.0,
        y - 6.0,
        escape(title)
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        x + w / 2.0,
        y + h + 32.0,
        escape(xlabel)
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" transform="rotate(-90 {} {})">{}</text>"#,
        x - 36.0,
        y + h / 2.0,
        x - 36.0,
        y + h / 2.0,
        escape(ylabel)
    );
}

fn ticks(s: &mut String, p: Panel, xmax: f64, ymax: f64) {
    let Panel { x, y, w, h } = p;
    for i in 0..=4 {
        let f = i as f64 / 4.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
            x + f * w,
            y + h + 14.0,
            short(f * xmax)
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" font-size="10">{}</text>"#,
            x - 4.0,
            y + h - f * h + 3.0,
            short(f * ymax)
        );
    }
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn polyline(s: &mut String, points: &[(f64, f64)], color: &str) {
    let pts: Vec<String> = points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let _ = writeln!(
        s,
        r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
        pts.join(" ")
    );
}

/// Cumulative distribution of change → ServiceNow latency, x up to p99.9 (max noted).
fn latency_panel(s: &mut String, r: &RunResult, p: Panel) {
    let Panel { x, y, w, h } = p;
    axes(
        s,
        p,
        "change → ServiceNow latency (CDF)",
        "milliseconds",
        "% of changes",
    );
    let lat = &r.series.latencies;
    let xmax = (percentile(lat, 0.999) as f64 / 1000.0).max(1.0);
    ticks(s, p, xmax, 100.0);
    if lat.is_empty() {
        return;
    }
    let steps = 200;
    let points: Vec<(f64, f64)> = (0..=steps)
        .map(|i| {
            let q = i as f64 / steps as f64;
            let ms = percentile(lat, q.max(1e-9)) as f64 / 1000.0;
            (x + (ms / xmax).min(1.0) * w, y + h - q * h)
        })
        .collect();
    polyline(s, &points, "#1f77b4");
    for (q, label) in [(0.5, "p50"), (0.99, "p99")] {
        let ms = percentile(lat, q) as f64 / 1000.0;
        let px = x + (ms / xmax).min(1.0) * w;
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{y}" x2="{px:.1}" y2="{}" stroke="#ccc" stroke-dasharray="3,3"/>"##,
            y + h
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="10">{label} {ms:.1} ms</text>"#,
            px + 3.0,
            y + h - q * h + 12.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="10" text-anchor="end">max {:.1} ms</text>"#,
        x + w - 4.0,
        y + h - 6.0,
        r.latency_ms(1.0)
    );
}

fn rate_points(times: &[i64], bucket_us: i64, buckets: usize) -> Vec<f64> {
    let mut counts = vec![0.0; buckets];
    for &t in times {
        let b = (t / bucket_us).clamp(0, buckets as i64 - 1) as usize;
        counts[b] += 1.0;
    }
    let per_second = 1_000_000.0 / bucket_us as f64;
    counts.into_iter().map(|c| c * per_second).collect()
}

fn throughput_panel(s: &mut String, r: &RunResult, p: Panel) {
    let Panel { x, y, w, h } = p;
    axes(
        s,
        p,
        "throughput over time",
        "seconds since the first alert",
        "per second",
    );
    let series = &r.series;
    let end = series
        .delivered
        .iter()
        .chain(&series.acked)
        .chain(&series.calls)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    let buckets = 60usize;
    let bucket_us = (end / buckets as i64 + 1).max(10_000);
    let buckets = (end / bucket_us + 1) as usize;
    let lines = [
        (
            rate_points(&series.acked, bucket_us, buckets),
            "#2ca02c",
            "changes ingested",
        ),
        (
            rate_points(&series.delivered, bucket_us, buckets),
            "#1f77b4",
            "changes in ServiceNow",
        ),
        (
            rate_points(&series.calls, bucket_us, buckets),
            "#d62728",
            "ServiceNow calls",
        ),
    ];
    let ymax = lines
        .iter()
        .flat_map(|(v, _, _)| v.iter().copied())
        .fold(1.0_f64, f64::max)
        * 1.1;
    let xmax = buckets as f64 * bucket_us as f64 / 1e6;
    ticks(s, p, xmax, ymax);
    for (i, (values, color, label)) in lines.iter().enumerate() {
        let points: Vec<(f64, f64)> = values
            .iter()
            .enumerate()
            .map(|(b, v)| {
                let t = (b as f64 + 0.5) * bucket_us as f64 / 1e6;
                (x + t / xmax * w, y + h - v / ymax * h)
            })
            .collect();
        polyline(s, &points, color);
        let ly = y + 14.0 + i as f64 * 14.0;
        let _ = writeln!(
            s,
            r#"<line x1="{}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="2"/>"#,
            x + 8.0,
            x + 24.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-size="10">{label}</text>"#,
            x + 28.0,
            ly + 3.0
        );
    }
}
