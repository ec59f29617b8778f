use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use snowbound::{App, ServeConfig};
use snowbound_emulator::{EmulatorConfig, User};

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
    },
    /// A ServiceNow Table API emulator, for trying Snowbound without an instance.
    Emulator {
        #[arg(long, default_value = "127.0.0.1:8089")]
        listen: SocketAddr,
        /// NAME:PASSWORD:ROLE[,ROLE…] (repeatable); roles admin, itil, personalize_choices,
        /// incident_reader. Default admin:admin:admin.
        #[arg(long = "user")]
        users: Vec<User>,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .init();

    match Cli::parse().command {
        Command::Serve(config) => {
            let app = App::start(config).await.context("starting Snowbound")?;
            if let Some(token) = &app.generated_admin_token {
                println!("Admin token (shown once; set SNOWBOUND_ADMIN_TOKEN to choose your own): {token}");
            }
            println!("Snowbound listening on {}", app.url());
            app.run_until_signal().await;
        }
        Command::Demo {
            listen,
            emulator_listen,
        } => snowbound::demo::run(listen, emulator_listen).await?,
        Command::Emulator {
            listen,
            users,
            no_data_policy,
            extra_tables,
            latency_ms,
        } => {
            let config = EmulatorConfig {
                users,
                data_policy: !no_data_policy,
                extra_tables,
                latency: Duration::from_millis(latency_ms),
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
