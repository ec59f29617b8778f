//! A `snowbound serve` child process for tests that need the real binary: signals,
//! crashes, and what it writes to its log. The binary's path comes from the test
//! (`env!("CARGO_BIN_EXE_snowbound")`, which only the `snowbound` package's tests have).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{eventually, ADMIN_TOKEN};

fn output(log: Option<&Path>) -> Stdio {
    match log {
        Some(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("log file opens")
            .into(),
        None => Stdio::null(),
    }
}

/// A `snowbound serve` child process, killed when dropped.
pub struct Node {
    child: Child,
    pub base: String,
}

impl Node {
    pub async fn start(bin: &str, data_dir: &Path) -> Node {
        Self::start_with(bin, data_dir, &[], None).await
    }

    /// `env` adds to (or overrides) the test settings; `log` receives stdout and stderr.
    pub async fn start_with(
        bin: &str,
        data_dir: &Path,
        env: &[(&str, &str)],
        log: Option<&Path>,
    ) -> Node {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .arg("serve")
            .env("SNOWBOUND_LISTEN", format!("127.0.0.1:{port}"))
            .env("SNOWBOUND_DATA_DIR", data_dir)
            .env("SNOWBOUND_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("SNOWBOUND_ALLOW_LOCAL_INSTANCES", "true")
            .env("SNOWBOUND_RETRY_BASE_MS", "20")
            .env("SNOWBOUND_RETRY_MAX_MS", "200")
            .env("SNOWBOUND_SERVICENOW_TIMEOUT_MS", "2000")
            .env("SNOWBOUND_LEASE_MS", "4000")
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(output(log))
            .stderr(output(log))
            .spawn()
            .expect("snowbound binary starts");
        let node = Node {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        eventually("the node answers /healthz", || async {
            http.get(format!("{}/healthz", node.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        node
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the node did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
