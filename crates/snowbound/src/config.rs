//! Configuration from the environment (DESIGN.md), mirrored by command-line flags. Every
//! default is a constant: the flags, [`ServeConfig::new`] and the engine's settings
//! ([`snowbound_engine::defaults`]) read the same ones.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use snowbound_engine::{defaults, Backoff, EngineConfig};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./snowbound-data";

const HTTP_HEADER_TIMEOUT_MS: u64 =
    snowbound_server::listener::DEFAULT_HEADER_READ_TIMEOUT.as_millis() as u64;
const HTTP_BODY_TIMEOUT_MS: u64 =
    snowbound_server::listener::DEFAULT_BODY_READ_TIMEOUT.as_millis() as u64;

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address the HTTP API listens on.
    #[arg(long, env = "SNOWBOUND_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Where the SQLite database and the secret key file live.
    #[arg(long, env = "SNOWBOUND_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// `sqlite://<path>` (one node; default `sqlite://<data dir>/snowbound.db`) or
    /// `postgres://…` (several nodes sharing one database).
    #[arg(long, env = "SNOWBOUND_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Do not apply PostgreSQL migrations on start (run `snowbound migrate` first); the
    /// node refuses to start on a schema older than itself. SQLite always migrates.
    /// Takes 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "SNOWBOUND_NO_MIGRATE", action = ArgAction::SetTrue,
          value_parser = BoolishValueParser::new())]
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
    #[arg(long, env = "SNOWBOUND_RETRY_BASE_MS", default_value_t = defaults::RETRY_BASE_MS)]
    pub retry_base_ms: u64,
    #[arg(long, env = "SNOWBOUND_RETRY_MAX_MS", default_value_t = defaults::RETRY_MAX_MS)]
    pub retry_max_ms: u64,
    /// Timeout of one call to ServiceNow, connect to last byte. The lease must cover one
    /// call: SNOWBOUND_LEASE_MS × 3/4 ≥ this + 1000.
    #[arg(
        long,
        env = "SNOWBOUND_SERVICENOW_TIMEOUT_MS",
        default_value_t = defaults::SERVICENOW_TIMEOUT_MS
    )]
    pub servicenow_timeout_ms: u64,
    /// First pause after a 429 without Retry-After; doubles while 429s continue.
    #[arg(
        long,
        env = "SNOWBOUND_RATE_LIMIT_COOLDOWN_MS",
        default_value_t = defaults::RATE_LIMIT_COOLDOWN_MS
    )]
    pub rate_limit_cooldown_ms: u64,
    /// Calls in flight to one integration at most (instances limit concurrent API
    /// transactions per user); with a slow instance, throughput is this ÷ its latency.
    /// A node leases no more of an integration's links than it can call for.
    #[arg(
        long,
        env = "SNOWBOUND_SERVICENOW_CONCURRENCY",
        default_value_t = defaults::SERVICENOW_CONCURRENCY
    )]
    pub servicenow_concurrency: usize,
    /// Calls per second to one integration at most (0 = no limit), counted over any
    /// one-second window, so an instance rate limit of this size is never hit. Per node.
    #[arg(
        long,
        env = "SNOWBOUND_SERVICENOW_RATE_LIMIT",
        default_value_t = defaults::SERVICENOW_RATE_LIMIT
    )]
    pub servicenow_rate_limit: u32,
    /// A ServiceNow record updated less than this long ago waits this long before its
    /// next update, so a flapping alert costs a few calls, not one per change (0 = off).
    #[arg(long, env = "SNOWBOUND_SYNC_SETTLE_MS", default_value_t = defaults::SYNC_SETTLE_MS)]
    pub sync_settle_ms: u64,
    /// How long a link stays leased without renewal: a node that dies keeps its links
    /// this long. Live nodes renew every quarter lease and before each call, so it must
    /// hold one call: this × 3/4 ≥ SNOWBOUND_SERVICENOW_TIMEOUT_MS + 1000.
    #[arg(long, env = "SNOWBOUND_LEASE_MS", default_value_t = defaults::LEASE_MS)]
    pub lease_ms: u64,
    /// A request's headers must arrive within this, counted from when the connection is
    /// ready for them (so it is also how long an idle kept-alive connection stays open).
    #[arg(
        long,
        env = "SNOWBOUND_HTTP_HEADER_TIMEOUT_MS",
        default_value_t = HTTP_HEADER_TIMEOUT_MS
    )]
    pub http_header_timeout_ms: u64,
    /// A request's body must arrive completely within this.
    #[arg(long, env = "SNOWBOUND_HTTP_BODY_TIMEOUT_MS", default_value_t = HTTP_BODY_TIMEOUT_MS)]
    pub http_body_timeout_ms: u64,
    /// Open HTTP connections at most (default: half the open-file limit, 64 to 4096);
    /// more wait to be accepted until one closes.
    #[arg(long, env = "SNOWBOUND_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// Receive email sources' mail over SMTP on this address (e.g. 0.0.0.0:2525); off
    /// when unset.
    #[arg(long, env = "SNOWBOUND_SMTP_LISTEN")]
    pub smtp_listen: Option<SocketAddr>,
    /// The domain in email sources' addresses (`<secret>@<domain>`); mail to other
    /// domains is refused. Default: the host of the public URL.
    #[arg(long, env = "SNOWBOUND_SMTP_DOMAIN")]
    pub smtp_domain: Option<String>,
    /// Alerts per second each source may send to this node (default 1000; 0 = no
    /// limit). A full bucket holds ten seconds of it; beyond, ingest answers 429 with
    /// Retry-After, which Alertmanager and Grafana retry.
    #[arg(long, env = "SNOWBOUND_INGEST_RATE_LIMIT", default_value_t = snowbound_services::DEFAULT_INGEST_RATE_LIMIT)]
    pub ingest_rate_limit: u32,
    /// Behind a reverse proxy: count logins per the client address the proxy appends
    /// to X-Forwarded-For, not per the proxy's own address. Only with a proxy that
    /// always sets it, or clients could pick their own address.
    #[arg(long, env = "SNOWBOUND_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// Forget every counted wrong password and end every login wait, then serve.
    /// For the administrator who locked themselves out.
    #[arg(long)]
    pub reset_login_limits: bool,
    /// Allow instance URLs with plain http:// or on loopback, private and link-local
    /// addresses (the demo and tests, with the emulator on 127.0.0.1). Off: any team could
    /// point an integration at a service next to Snowbound. Takes 1/0, true/false, yes/no, on/off.
    #[arg(long, env = "SNOWBOUND_ALLOW_LOCAL_INSTANCES", action = ArgAction::SetTrue,
          value_parser = BoolishValueParser::new())]
    pub allow_local_instances: bool,
    /// Bearer token a scrape of /metrics must send; unset leaves /metrics open.
    #[arg(long, env = "SNOWBOUND_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// How log lines are written (`SNOWBOUND_LOG_FORMAT`). Read before the command line is
/// parsed, since every subcommand logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// tracing's plain text, for people reading a terminal or the journal.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("SNOWBOUND_LOG_FORMAT={0:?} is not a log format: use `human` (the default) or `json`")]
pub struct UnknownLogFormat(pub String);

impl LogFormat {
    pub const ENV: &'static str = "SNOWBOUND_LOG_FORMAT";

    /// The format `SNOWBOUND_LOG_FORMAT` names; unset or empty is human.
    pub fn from_env() -> Result<LogFormat, UnknownLogFormat> {
        match std::env::var(Self::ENV) {
            Ok(value) => value.parse(),
            Err(_) => Ok(LogFormat::Human),
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(UnknownLogFormat(s.to_owned())),
        }
    }
}

/// A setting the node cannot run with, named by its environment variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("SNOWBOUND_LEASE_MS={lease_ms} with SNOWBOUND_SERVICENOW_TIMEOUT_MS={timeout_ms}: {reason}. Raise SNOWBOUND_LEASE_MS to at least {shortest_ms} or lower SNOWBOUND_SERVICENOW_TIMEOUT_MS")]
    LeaseTooShort {
        lease_ms: u64,
        timeout_ms: u64,
        shortest_ms: u128,
        reason: snowbound_engine::LeaseTooShort,
    },
    #[error("{0} must be at least 1")]
    Zero(&'static str),
    #[error("SNOWBOUND_RETRY_MAX_MS={max} is below SNOWBOUND_RETRY_BASE_MS={base}")]
    RetryMaxBelowBase { base: u64, max: u64 },
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

    pub fn http_limits(&self) -> snowbound_server::listener::Limits {
        let defaults = snowbound_server::listener::Limits::default();
        snowbound_server::listener::Limits {
            header_read_timeout: Duration::from_millis(self.http_header_timeout_ms.max(1)),
            body_read_timeout: Duration::from_millis(self.http_body_timeout_ms.max(1)),
            max_connections: self
                .http_max_connections
                .unwrap_or(defaults.max_connections),
            trust_forwarded_for: self.trust_forwarded_for,
        }
    }

    pub fn lease_for(&self) -> Duration {
        Duration::from_millis(self.lease_ms)
    }

    /// Checked once at start-up, before anything is opened.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            (
                "SNOWBOUND_SERVICENOW_TIMEOUT_MS",
                self.servicenow_timeout_ms,
            ),
            ("SNOWBOUND_LEASE_MS", self.lease_ms),
            (
                "SNOWBOUND_SERVICENOW_CONCURRENCY",
                self.servicenow_concurrency as u64,
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Zero(name));
        }
        if self.retry_max_ms < self.retry_base_ms {
            return Err(ConfigError::RetryMaxBelowBase {
                base: self.retry_base_ms,
                max: self.retry_max_ms,
            });
        }
        snowbound_engine::check_lease(self.lease_for(), self.servicenow_timeout()).map_err(
            |reason| ConfigError::LeaseTooShort {
                lease_ms: self.lease_ms,
                timeout_ms: self.servicenow_timeout_ms,
                shortest_ms: reason.shortest.as_millis(),
                reason,
            },
        )
    }

    /// The engine's settings for a node serving at `public_url`.
    pub fn engine_config(&self, public_url: String) -> EngineConfig {
        EngineConfig {
            node_id: self
                .node_id
                .clone()
                .unwrap_or_else(EngineConfig::random_node_id),
            public_url,
            backoff: Backoff {
                base: Duration::from_millis(self.retry_base_ms),
                max: Duration::from_millis(self.retry_max_ms),
            },
            lease_for: self.lease_for(),
            call_timeout: self.servicenow_timeout(),
            max_in_flight: EngineConfig::max_in_flight_for(self.servicenow_concurrency),
            per_integration_concurrency: self.servicenow_concurrency,
            per_integration_rate_limit: (self.servicenow_rate_limit > 0)
                .then_some(self.servicenow_rate_limit),
            rate_limit_cooldown: Duration::from_millis(self.rate_limit_cooldown_ms),
            settle: Duration::from_millis(self.sync_settle_ms),
            ..EngineConfig::default()
        }
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
            retry_base_ms: defaults::RETRY_BASE_MS,
            retry_max_ms: defaults::RETRY_MAX_MS,
            servicenow_timeout_ms: defaults::SERVICENOW_TIMEOUT_MS,
            rate_limit_cooldown_ms: defaults::RATE_LIMIT_COOLDOWN_MS,
            servicenow_concurrency: defaults::SERVICENOW_CONCURRENCY,
            servicenow_rate_limit: defaults::SERVICENOW_RATE_LIMIT,
            sync_settle_ms: defaults::SYNC_SETTLE_MS,
            lease_ms: defaults::LEASE_MS,
            http_header_timeout_ms: HTTP_HEADER_TIMEOUT_MS,
            http_body_timeout_ms: HTTP_BODY_TIMEOUT_MS,
            http_max_connections: None,
            ingest_rate_limit: snowbound_services::DEFAULT_INGEST_RATE_LIMIT,
            smtp_listen: None,
            smtp_domain: None,
            trust_forwarded_for: false,
            reset_login_limits: false,
            allow_local_instances: false,
            metrics_token: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeConfig,
    }

    fn parse(args: &[&str]) -> ServeConfig {
        Cli::try_parse_from(std::iter::once("snowbound").chain(args.iter().copied()))
            .unwrap()
            .serve
    }

    #[test]
    fn the_flags_defaults_are_the_serve_config_defaults() {
        let flags = parse(&[]);
        let new = ServeConfig::new(DEFAULT_LISTEN.parse().unwrap(), DEFAULT_DATA_DIR.into());
        assert_eq!(format!("{flags:?}"), format!("{new:?}"));
        new.validate().unwrap();
        let engine = new.engine_config("http://x".into());
        let default = EngineConfig::default();
        assert_eq!(
            (
                engine.lease_for,
                engine.call_timeout,
                engine.settle,
                engine.max_in_flight
            ),
            (
                default.lease_for,
                default.call_timeout,
                default.settle,
                default.max_in_flight
            )
        );

        // Boolean variables take the usual spellings. In this test, after the parse
        // above: the only one in this binary reading the environment.
        for (value, expected) in [
            ("1", true),
            ("true", true),
            ("yes", true),
            ("on", true),
            ("0", false),
            ("false", false),
            ("no", false),
            ("off", false),
        ] {
            std::env::set_var("SNOWBOUND_NO_MIGRATE", value);
            let parsed = Cli::try_parse_from(["snowbound"]).map(|c| c.serve.no_migrate);
            std::env::remove_var("SNOWBOUND_NO_MIGRATE");
            assert_eq!(parsed.unwrap(), expected, "SNOWBOUND_NO_MIGRATE={value}");
        }
        std::env::set_var("SNOWBOUND_NO_MIGRATE", "maybe");
        let refused = Cli::try_parse_from(["snowbound"]).is_err();
        std::env::remove_var("SNOWBOUND_NO_MIGRATE");
        assert!(refused);
        assert!(parse(&["--no-migrate"]).no_migrate);
    }

    #[test]
    fn a_lease_too_short_for_one_call_is_refused_naming_both_variables() {
        let mut config = ServeConfig::new(DEFAULT_LISTEN.parse().unwrap(), DEFAULT_DATA_DIR.into());
        config.servicenow_timeout_ms = 3_000;
        config.lease_ms = 5_333;
        let text = config.validate().unwrap_err().to_string();
        assert!(text.contains("SNOWBOUND_LEASE_MS=5333"), "{text}");
        assert!(
            text.contains("SNOWBOUND_SERVICENOW_TIMEOUT_MS=3000"),
            "{text}"
        );
        assert!(text.contains("at least 5334"), "{text}");
        config.lease_ms = 5_334;
        config.validate().unwrap();
        config.servicenow_concurrency = 0;
        let text = config.validate().unwrap_err().to_string();
        assert!(text.contains("SNOWBOUND_SERVICENOW_CONCURRENCY"), "{text}");
    }
}
