//! The server under test: the real `snowbound serve` as a child process on a temporary
//! data dir, so its memory and CPU are its own (read from /proc), and its setup over
//! the HTTP API as a user would do it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

const ADMIN_TOKEN: &str = "sb_bench_admin_token";

pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: tempfile::TempDir,
    http: reqwest::Client,
}

/// Engine knobs of one run, passed as the environment of `snowbound serve`.
#[derive(Clone, Debug)]
pub struct Knobs {
    pub concurrency: usize,
    pub rate_limit: Option<u32>,
    pub extra_env: Vec<(String, String)>,
}

/// `snowbound` next to this binary (cargo puts both in target/<profile>), else on PATH.
pub fn default_binary() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("snowbound")))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from("snowbound"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    pub async fn start(binary: &Path, knobs: &Knobs) -> anyhow::Result<Server> {
        let data_dir = tempfile::Builder::new()
            .prefix("snowbound-bench")
            .tempdir()?;
        let port = free_port()?;
        let log = std::fs::File::create(data_dir.path().join("server.log"))?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .env("SNOWBOUND_LISTEN", format!("127.0.0.1:{port}"))
            .env("SNOWBOUND_DATA_DIR", data_dir.path())
            .env("SNOWBOUND_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SNOWBOUND_SECRET_KEY", "00".repeat(32))
            // The emulator listens on 127.0.0.1 over plain http.
            .env("SNOWBOUND_ALLOW_LOCAL_INSTANCES", "true")
            // The bench measures how fast ingest can go, not the per-source limit.
            .env("SNOWBOUND_INGEST_RATE_LIMIT", "0")
            .env(
                "SNOWBOUND_SERVICENOW_CONCURRENCY",
                knobs.concurrency.to_string(),
            )
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if let Some(limit) = knobs.rate_limit {
            command.env("SNOWBOUND_SERVICENOW_RATE_LIMIT", limit.to_string());
        }
        for (k, v) in &knobs.extra_env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {} serve", binary.display()))?;
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            data_dir,
            http: reqwest::Client::new(),
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(resp) = self.http.get(format!("{}/healthz", self.url)).send().await {
                if resp.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log =
            std::fs::read_to_string(self.data_dir.path().join("server.log")).unwrap_or_default();
        bail!("snowbound serve did not become ready within 60 s:\n{log}")
    }

    /// One page of `GET path` as the admin: how many incidents it held and the
    /// `rel="next"` address, if any.
    pub async fn page(&self, path: &str) -> anyhow::Result<(usize, Option<String>)> {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?;
        let status = resp.status();
        let next = resp
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_suffix(">; rel=\"next\""))
            .and_then(|v| v.strip_prefix('<'))
            .map(str::to_owned);
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("GET {path} answered {status}: {answer}");
        }
        let count = answer.as_array().context("a JSON array")?.len();
        Ok((count, next))
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, body).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> anyhow::Result<Value> {
        let resp = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await?;
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {answer}");
        }
        Ok(answer)
    }

    /// A team, a ServiceNow integration on `instance` forwarding every incident, and a
    /// source of `kind` (`webhook`, `alertmanager`); returns the ingest URL and the
    /// integration's id.
    pub async fn set_up(
        &self,
        instance: &str,
        user: (&str, &str),
        kind: &str,
    ) -> anyhow::Result<(String, String)> {
        let team = self.post("/api/v1/teams", json!({"name": "bench"})).await?;
        let team_id = team["id"].as_str().context("team id")?.to_owned();
        let integration = self
            .post(
                "/api/v1/integrations",
                json!({
                    "display_name": "bench",
                    "root_team_id": team_id,
                    "type": "servicenow",
                    "forwarding": "always",
                    "servicenow": {
                        "instance_url": instance,
                        "username": user.0,
                        "password": user.1,
                        "close_code": "Solution provided",
                    },
                }),
            )
            .await?;
        let integration_id = integration["id"]
            .as_str()
            .context("integration id")?
            .to_owned();
        let source = self
            .post(
                "/api/v1/sources",
                json!({"team_id": team_id, "type": kind, "name": "bench"}),
            )
            .await?;
        let url = source["ingest_url"]
            .as_str()
            .context("ingest_url")?
            .to_owned();
        Ok((url, integration_id))
    }

    /// New password: a failing integration resumes and every link is due at once.
    pub async fn set_password(&self, integration_id: &str, password: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::PATCH,
            &format!("/api/v1/integrations/{integration_id}"),
            json!({"servicenow": {"password": password}}),
        )
        .await?;
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stats(&self) -> ProcStats {
        ProcStats::of(self.pid())
    }

    /// SIGTERM, then SIGKILL if it lingers.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// Peak resident memory and CPU time of a process, from /proc.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcStats {
    pub peak_rss_kb: u64,
    pub cpu_seconds: f64,
}

impl ProcStats {
    pub fn of(pid: u32) -> ProcStats {
        Self::read(&format!("/proc/{pid}"))
    }

    pub fn own() -> ProcStats {
        Self::read("/proc/self")
    }

    fn read(dir: &str) -> ProcStats {
        let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let stat = std::fs::read_to_string(format!("{dir}/stat")).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at field 3;
        // utime and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |n: usize| {
            fields
                .get(n - 3)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ProcStats {
            peak_rss_kb: kb("VmHWM:"),
            cpu_seconds: (ticks(14) + ticks(15)) as f64 / 100.0,
        }
    }
}
