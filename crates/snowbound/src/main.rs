use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use snowbound::{App, LogFormat, ServeConfig};
use snowbound_emulator::{ApiKey, EmulatorConfig, OAuthClient, User};

/// Every alert allocates and frees many small buffers (its rows' text, its answer) on
/// whichever thread handles it; glibc's allocator spent a quarter of the server's CPU
/// there under an alert storm (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Snowbound keeps ServiceNow incidents in step with the incidents your alerts open.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the sync engine.
    Serve(ServeConfig),
    /// Everything embedded: SQLite in a temporary directory, the ServiceNow emulator and
    /// a demo integration with a few incidents.
    Demo {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:8089")]
        emulator_listen: SocketAddr,
        /// How the demo integration signs in to the emulator: `basic` or `oauth` (OAuth
        /// client credentials).
        #[arg(long, env = "SNOWBOUND_DEMO_AUTH", default_value = "basic")]
        auth: snowbound::demo::DemoAuth,
    },
    /// A ServiceNow Table API emulator, for trying Snowbound without an instance.
    Emulator {
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: SocketAddr,
        /// NAME:PASSWORD:ROLE[,ROLE…][:N/s,N/h,wsao] (repeatable); roles admin, itil,
        /// personalize_choices, incident_reader, snc_basic_auth_api_access; `wsao` flags the
        /// account web-service-access-only. Default admin:admin:admin.
        #[arg(long = "user")]
        users: Vec<User>,
        /// OAuth client CLIENT_ID:SECRET[:APP_USER] for /oauth_token.do (repeatable).
        #[arg(long = "oauth-client")]
        oauth_clients: Vec<OAuthClient>,
        /// System property NAME=VALUE (repeatable), e.g.
        /// glide.authenticate.basic_auth.restriction.enforce=true.
        #[arg(long = "property", value_parser = parse_property)]
        properties: Vec<(String, String)>,
        /// Access token lifespan in seconds.
        #[arg(long, default_value_t = 1800)]
        access_token_lifespan_s: u64,
        /// REST API key KEY:USER (repeatable); refused until --api-key-policy.
        #[arg(long = "api-key")]
        api_keys: Vec<ApiKey>,
        /// A REST API Access Policy lets API keys in to the Table API.
        #[arg(long)]
        api_key_policy: bool,
        /// Accept moves to Resolved without close code and notes.
        #[arg(long)]
        no_data_policy: bool,
        /// Extra table extending incident: NAME or NAME:PREFIX (repeatable).
        #[arg(long = "extra-table")]
        extra_tables: Vec<String>,
        /// Latency added to every Table API call, like a real instance's.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
    },
    /// Apply database migrations and exit.
    Migrate(ServeConfig),
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}

/// A line for the person starting the node: `message: value` in human form, or one JSON
/// object when the logs are JSON.
fn say(format: LogFormat, message: &str, (key, value): (&str, &str)) {
    match format {
        LogFormat::Human => println!("{message} {value}"),
        LogFormat::Json => {
            let mut line = serde_json::json!({ "message": message.trim_end_matches(':') });
            line[key] = value.into();
            println!("{line}");
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let log_format = LogFormat::from_env()?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into());
    match log_format {
        LogFormat::Human => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }

    match Cli::parse().command {
        Command::Serve(config) => {
            let app = App::start(config).await.context("starting Snowbound")?;
            // Said on stdout as before, as JSON lines too when the logs are JSON, so
            // that every line of the output parses.
            if let Some(token) = &app.generated_admin_token {
                say(
                    log_format,
                    "Admin token (shown once; set SNOWBOUND_ADMIN_TOKEN to choose your own):",
                    ("admin_token", token),
                );
            }
            say(log_format, "Snowbound listening on", ("url", &app.url()));
            app.run_until_signal().await;
        }
        Command::Demo {
            listen,
            emulator_listen,
            auth,
        } => snowbound::demo::run(listen, emulator_listen, auth).await?,
        Command::Emulator {
            listen,
            users,
            no_data_policy,
            extra_tables,
            latency_ms,
            oauth_clients,
            properties,
            access_token_lifespan_s,
            api_keys,
            api_key_policy,
        } => {
            let config = EmulatorConfig {
                users,
                data_policy: !no_data_policy,
                extra_tables,
                latency: Duration::from_millis(latency_ms),
                oauth_clients,
                properties: properties.into_iter().collect(),
                access_token_lifespan: Duration::from_secs(access_token_lifespan_s),
                api_keys,
                api_key_policy,
                ..EmulatorConfig::default()
            };
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            println!("ServiceNow emulator on http://{listen} (records at /, Table API at /api/now/table/...)");
            snowbound_emulator::serve(listener, config).await?;
        }
        Command::Migrate(mut config) => {
            config.no_migrate = false;
            snowbound::app::open_store(&config)
                .await
                .context("applying migrations")?;
            println!("Migrations applied.");
        }
    }
    Ok(())
}
