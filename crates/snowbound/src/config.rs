//! Configuration from the environment (DESIGN.md), mirrored by command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address the HTTP API listens on.
    #[arg(long, env = "SNOWBOUND_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the SQLite database and the secret key file live.
    #[arg(long, env = "SNOWBOUND_DATA_DIR", default_value = "./snowbound-data")]
    pub data_dir: PathBuf,
    /// `sqlite://<path>` (one node; default `sqlite://<data dir>/snowbound.db`) or
    /// `postgres://…` (several nodes sharing one database).
    #[arg(long, env = "SNOWBOUND_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Do not apply PostgreSQL migrations on start (run `snowbound migrate` first); the
    /// node refuses to start on a schema older than itself. SQLite always migrates.
    #[arg(long, env = "SNOWBOUND_NO_MIGRATE", default_value_t = false)]
    pub no_migrate: bool,
    /// Names this node's link leases (default: random per start), so the database shows
    /// which node holds what.
    #[arg(long, env = "SNOWBOUND_NODE_ID")]
    pub node_id: Option<String>,
    /// Admin bearer token; generated on first start and printed once when unset.
    #[arg(long, env = "SNOWBOUND_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// 32 bytes as base64 or 64 hex digits; else a key file in the data dir.
    #[arg(long, env = "SNOWBOUND_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,
    /// First web UI administrator, created at start when no user exists yet (else the
    /// one-time setup page at /setup creates one).
    #[arg(long, env = "SNOWBOUND_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    #[arg(long, env = "SNOWBOUND_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Base URL of this Snowbound as users reach it, for links written into ServiceNow.
    #[arg(long, env = "SNOWBOUND_PUBLIC_URL")]
    pub public_url: Option<String>,
    #[arg(long, env = "SNOWBOUND_RETRY_BASE_MS", default_value_t = 1000)]
    pub retry_base_ms: u64,
    #[arg(long, env = "SNOWBOUND_RETRY_MAX_MS", default_value_t = 600_000)]
    pub retry_max_ms: u64,
    /// Timeout of one call to ServiceNow.
    #[arg(
        long,
        env = "SNOWBOUND_SERVICENOW_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub servicenow_timeout_ms: u64,
    /// First pause after a 429 without Retry-After; doubles while 429s continue.
    #[arg(
        long,
        env = "SNOWBOUND_RATE_LIMIT_COOLDOWN_MS",
        default_value_t = 5_000
    )]
    pub rate_limit_cooldown_ms: u64,
    /// Calls in flight to one integration at most (instances limit concurrent API
    /// transactions per user); with a slow instance, throughput is this ÷ its latency.
    #[arg(long, env = "SNOWBOUND_SERVICENOW_CONCURRENCY", default_value_t = 8)]
    pub servicenow_concurrency: usize,
    /// Calls per second to one integration at most (0 = no limit), counted over any
    /// one-second window, so an instance rate limit of this size is never hit. Per node.
    #[arg(long, env = "SNOWBOUND_SERVICENOW_RATE_LIMIT", default_value_t = 0)]
    pub servicenow_rate_limit: u32,
    /// A ServiceNow record updated less than this long ago waits this long before its
    /// next update, so a flapping alert costs a few calls, not one per change (0 = off).
    #[arg(long, env = "SNOWBOUND_SYNC_SETTLE_MS", default_value_t = 500)]
    pub sync_settle_ms: u64,
    /// How long a link stays leased by a worker; must exceed two ServiceNow timeouts.
    #[arg(long, env = "SNOWBOUND_LEASE_MS")]
    pub lease_ms: Option<u64>,
    /// Allow instance URLs with plain http:// or on loopback, private and link-local
    /// addresses (the demo and tests, with the emulator on 127.0.0.1). Off: any team could
    /// point an integration at a service next to Snowbound.
    #[arg(long, env = "SNOWBOUND_ALLOW_LOCAL_INSTANCES", default_value_t = false)]
    pub allow_local_instances: bool,
}

impl ServeConfig {
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("snowbound.db").display()))
    }

    pub fn public_url(&self, bound: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{bound}"))
    }

    pub fn servicenow_timeout(&self) -> Duration {
        Duration::from_millis(self.servicenow_timeout_ms)
    }

    pub fn lease_for(&self) -> Duration {
        self.lease_ms
            .map(Duration::from_millis)
            .unwrap_or_else(|| self.servicenow_timeout() * 2 + Duration::from_secs(30))
    }

    /// Defaults for a server on `listen` keeping its data in `data_dir` (tests, demo).
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        ServeConfig {
            listen,
            data_dir,
            database_url: None,
            no_migrate: false,
            node_id: None,
            admin_token: None,
            admin_email: None,
            admin_password: None,
            secret_key: None,
            public_url: None,
            retry_base_ms: 1000,
            retry_max_ms: 600_000,
            servicenow_timeout_ms: 30_000,
            rate_limit_cooldown_ms: 5_000,
            servicenow_concurrency: 8,
            servicenow_rate_limit: 0,
            sync_settle_ms: 500,
            lease_ms: None,
            allow_local_instances: false,
        }
    }
}
