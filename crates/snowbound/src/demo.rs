//! `snowbound demo`: a throwaway Snowbound wired to the built-in ServiceNow emulator,
//! set up through the same HTTP API a user would call.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use snowbound_emulator::{property, Emulator, EmulatorConfig, OAuthClient};
use tokio::net::TcpListener;

use crate::{App, ServeConfig};

/// The demo's web UI login, printed at start.
pub const DEMO_EMAIL: &str = "admin@snowbound.demo";
pub const DEMO_PASSWORD: &str = "snowbound-demo";

/// The demo's OAuth client in the emulator.
pub const DEMO_CLIENT_ID: &str = "snowbound-demo";
pub const DEMO_CLIENT_SECRET: &str = "snowbound-demo-secret";

/// How the demo integration authenticates (`--auth`, `SNOWBOUND_DEMO_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DemoAuth {
    #[default]
    Basic,
    /// OAuth client credentials, with the grant enabled on the emulator as an admin would.
    #[value(name = "oauth", alias = "oauth_client_credentials")]
    Oauth,
}

impl DemoAuth {
    fn emulator_config(self) -> EmulatorConfig {
        let mut config = EmulatorConfig::default();
        if self == DemoAuth::Oauth {
            config.oauth_clients.push(
                OAuthClient::new(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET).with_application_user("admin"),
            );
            config
                .properties
                .insert(property::CLIENT_CREDENTIALS_ENABLED.into(), "true".into());
        }
        config
    }

    /// `servicenow.auth` of the demo integration.
    pub fn integration_auth(self) -> Value {
        match self {
            DemoAuth::Basic => json!({"type": "basic", "username": "admin", "password": "admin"}),
            DemoAuth::Oauth => json!({"type": "oauth_client_credentials",
                                      "client_id": DEMO_CLIENT_ID,
                                      "client_secret": DEMO_CLIENT_SECRET}),
        }
    }

    fn described(self) -> String {
        match self {
            DemoAuth::Basic => "Table API user admin / admin".into(),
            DemoAuth::Oauth => {
                format!("OAuth client credentials, client {DEMO_CLIENT_ID} / {DEMO_CLIENT_SECRET}")
            }
        }
    }
}

pub async fn run(
    listen: SocketAddr,
    emulator_listen: SocketAddr,
    auth: DemoAuth,
) -> anyhow::Result<()> {
    let emulator = Emulator::start_on(free_or_any(emulator_listen).await, auth.emulator_config())
        .await
        .context("starting the ServiceNow emulator")?;
    let data_dir = tempfile::Builder::new()
        .prefix("snowbound-demo-")
        .tempdir()?;
    let mut config = ServeConfig::new(free_or_any(listen).await, data_dir.path().to_path_buf());
    config.admin_token = Some("demo-admin-token".into());
    config.admin_email = Some(DEMO_EMAIL.into());
    config.admin_password = Some(DEMO_PASSWORD.into());
    config.retry_base_ms = 200;
    config.retry_max_ms = 5_000;
    // The demo's ServiceNow is the emulator on 127.0.0.1, over plain http.
    config.allow_local_instances = true;
    let app = App::start(config).await?;
    let api = Api {
        base: app.url(),
        http: reqwest::Client::new(),
    };

    let team = api
        .post("/api/v1/teams", json!({"name": "Platform"}))
        .await?;
    let integration = api
        .post(
            "/api/v1/integrations",
            json!({
                "display_name": "ServiceNow (emulator)",
                "root_team_id": team["id"],
                "type": "servicenow",
                "forwarding": "always",
                "servicenow": {
                    "instance_url": emulator.base_url(),
                    "auth": auth.integration_auth(),
                    "close_code": "Solution provided",
                    "severity": {
                        "primary_field": "urgency",
                        "primary_map": {"critical": "1", "warning": "2", "minor": "3"},
                        "secondary_field": "impact",
                        "secondary_map": {"critical": "1", "warning": "2", "minor": "3"}
                    }
                }
            }),
        )
        .await?;
    let incident = |title: &str, severity: &str| {
        json!({"team_id": team["id"], "title": title, "severity": severity,
               "description": "Opened by snowbound demo."})
    };
    api.post(
        "/api/v1/incidents",
        incident("Checkout latency above 2 s", "critical"),
    )
    .await?;
    let disk = api
        .post(
            "/api/v1/incidents",
            incident("Disk 91% full on db-2", "warning"),
        )
        .await?;
    let cert = api
        .post(
            "/api/v1/incidents",
            incident("TLS certificate expires in 6 days", "minor"),
        )
        .await?;
    api.post(
        &format!(
            "/api/v1/incidents/{}/acknowledge",
            disk["id"].as_str().unwrap_or_default()
        ),
        json!({}),
    )
    .await?;
    api.post(
        &format!(
            "/api/v1/incidents/{}/resolve",
            cert["id"].as_str().unwrap_or_default()
        ),
        json!({"comment": "Renewed the certificate."}),
    )
    .await?;

    println!();
    println!(
        "Snowbound demo is running (data in {}, removed on exit).",
        data_dir.path().display()
    );
    println!();
    println!("  Web UI               {}/login", app.url());
    println!("  Web UI login         {DEMO_EMAIL} / {DEMO_PASSWORD}");
    println!("  Snowbound API        {}/api/v1", app.url());
    println!("  Admin token          demo-admin-token");
    println!(
        "  ServiceNow emulator  {}/   (records as they arrive; {})",
        emulator.base_url(),
        auth.described()
    );
    println!(
        "  Integration          {}",
        integration["id"].as_str().unwrap_or_default()
    );
    println!();
    println!("Try:");
    println!(
        "  curl -s -H 'Authorization: Bearer demo-admin-token' {}/api/v1/incidents",
        app.url()
    );
    println!(
        "  open {}/ to watch the ServiceNow records",
        emulator.base_url()
    );
    println!();
    println!("Press Ctrl-C to stop.");
    app.run_until_signal().await;
    emulator.shutdown().await;
    Ok(())
}

/// The demo prefers the documented ports, but a second demo or a busy port should not
/// stop someone trying Snowbound.
async fn free_or_any(preferred: SocketAddr) -> SocketAddr {
    match TcpListener::bind(preferred).await {
        Ok(listener) => {
            drop(listener);
            preferred
        }
        Err(_) => SocketAddr::new(preferred.ip(), 0),
    }
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth("demo-admin-token")
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path} answered {status}: {answer}");
        }
        Ok(answer)
    }
}
