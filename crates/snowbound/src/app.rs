//! Boots one Snowbound node: store, sync engine and HTTP API, with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use snowbound_engine::{Backoff, Engine, EngineConfig, EngineWaker};
use snowbound_server::{hash_token, AppState};
use snowbound_servicenow::{Client, ClientConfig};
use snowbound_store::{Migrations, PostgresStore, SecretBox, SqliteStore, Store, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::ServeConfig;

const ADMIN_TOKEN_HASH: &str = "admin_token_sha256";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    SecretKey(#[from] snowbound_store::SecretKeyError),
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    /// Said before anything is written, so a node with the wrong key cannot seal
    /// secrets that the others could not read.
    #[error("this secret key cannot open the secrets already in the database ({0}); every node sharing a database must use the same SNOWBOUND_SECRET_KEY. Refusing to start")]
    WrongSecretKey(String),
    #[error("unsupported SNOWBOUND_DATABASE_URL `{0}`: use sqlite://<path> or postgres://…")]
    DatabaseUrl(String),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("SNOWBOUND_ADMIN_EMAIL/SNOWBOUND_ADMIN_PASSWORD: {0}")]
    FirstAdmin(#[from] snowbound_server::accounts::FirstAdminError),
    #[error("cannot build the ServiceNow client: {0}")]
    Client(#[from] snowbound_servicenow::BuildError),
}

/// A running node.
pub struct App {
    pub addr: SocketAddr,
    pub public_url: String,
    /// Set only on the start that generated the admin token: it is shown this once.
    pub generated_admin_token: Option<String>,
    pub store: Arc<dyn Store>,
    pub waker: EngineWaker,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    engine: JoinHandle<()>,
    /// PostgreSQL only: wakes this node's engine when another node commits a change.
    change_listener: Option<JoinHandle<()>>,
}

impl App {
    pub async fn start(config: ServeConfig) -> Result<App, AppError> {
        let (store, postgres) = open_backend(&config).await?;
        let (admin_token_hash, generated_admin_token) =
            admin_token(&*store, config.admin_token.as_deref()).await?;
        if let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) {
            if snowbound_server::accounts::ensure_first_admin(&*store, email, password).await? {
                tracing::info!(%email, "created the first web UI administrator");
            }
        }

        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| AppError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| AppError::Listen {
            addr: config.listen,
            source,
        })?;
        let public_url = config.public_url(addr);

        let client = Client::new(ClientConfig {
            request_timeout: config.servicenow_timeout(),
            allow_local_instances: config.allow_local_instances,
            ..ClientConfig::default()
        })?;
        let waker = EngineWaker::new();
        let change_listener = postgres.map(|pg| {
            let waker = waker.clone();
            pg.spawn_change_listener(move || waker.wake())
        });
        let engine = Engine::new(
            Arc::clone(&store),
            client.clone(),
            waker.clone(),
            EngineConfig {
                node_id: config
                    .node_id
                    .clone()
                    .unwrap_or_else(|| EngineConfig::default().node_id),
                public_url: public_url.clone(),
                backoff: Backoff {
                    base: Duration::from_millis(config.retry_base_ms),
                    max: Duration::from_millis(config.retry_max_ms.max(config.retry_base_ms)),
                },
                lease_for: config.lease_for(),
                rate_limit_cooldown: Duration::from_millis(config.rate_limit_cooldown_ms),
                per_integration_concurrency: config.servicenow_concurrency.max(1),
                // Reconciles waiting for an integration's gate hold a slot too, so leave
                // room for a full gate's worth beyond the default.
                max_in_flight: (config.servicenow_concurrency * 8).max(64),
                settle: Duration::from_millis(config.sync_settle_ms),
                per_integration_rate_limit: (config.servicenow_rate_limit > 0)
                    .then_some(config.servicenow_rate_limit),
                ..EngineConfig::default()
            },
        );

        let (stop, stopped) = watch::channel(false);
        let engine = tokio::spawn(engine.run(wait_for(stopped.clone())));
        let state = AppState::new(
            Arc::clone(&store),
            waker.clone(),
            public_url.clone(),
            admin_token_hash,
        )
        .with_servicenow_client(client);
        let router = snowbound_server::router(state);
        let server = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(wait_for(stopped))
                .await
        });
        tracing::info!(%addr, %public_url, "Snowbound is listening");
        Ok(App {
            addr,
            public_url,
            generated_admin_token,
            store,
            waker,
            stop,
            server,
            engine,
            change_listener,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops taking requests, lets in-flight requests and reconciles finish, then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Ok(Err(e)) = self.server.await {
            tracing::warn!(error = %e, "HTTP server ended with an error");
        }
        let _ = self.engine.await;
        if let Some(listener) = self.change_listener {
            listener.abort();
        }
    }

    /// Runs until SIGINT/SIGTERM, then shuts down gracefully.
    pub async fn run_until_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// Opens the configured database, applying its migrations (for PostgreSQL unless
/// `no_migrate`, then only checking they were applied).
pub async fn open_store(config: &ServeConfig) -> Result<Arc<dyn Store>, AppError> {
    Ok(open_backend(config).await?.0)
}

/// The store, plus the PostgreSQL store again when that is the backend, for the
/// cross-node change listener. The URL's scheme picks the backend.
async fn open_backend(
    config: &ServeConfig,
) -> Result<(Arc<dyn Store>, Option<PostgresStore>), AppError> {
    let database_url = config.database_url();
    let secrets = || SecretBox::from_env_or_file(config.secret_key.as_deref(), &config.data_dir);
    if database_url.starts_with("sqlite:") {
        let store = SqliteStore::open(&database_url, secrets()?)
            .await
            .map_err(wrong_key)?;
        return Ok((Arc::new(store), None));
    }
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        let migrations = if config.no_migrate {
            Migrations::RequireApplied
        } else {
            Migrations::Apply
        };
        let store = PostgresStore::open(&database_url, secrets()?, migrations)
            .await
            .map_err(wrong_key)?;
        return Ok((Arc::new(store.clone()), Some(store)));
    }
    Err(AppError::DatabaseUrl(database_url))
}

fn wrong_key(e: StoreError) -> AppError {
    match e {
        StoreError::Secret(detail) => AppError::WrongSecretKey(detail),
        other => AppError::Store(other),
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

/// The configured token wins; else the stored hash of the token generated on the first
/// start; else a new token, whose hash is stored and which is returned to print once.
async fn admin_token(
    store: &dyn Store,
    configured: Option<&str>,
) -> Result<([u8; 32], Option<String>), StoreError> {
    if let Some(token) = configured.filter(|t| !t.trim().is_empty()) {
        return Ok((hash_token(token.trim()), None));
    }
    if let Some(stored) = store.get_meta(ADMIN_TOKEN_HASH).await? {
        let mut hash = [0u8; 32];
        if hex::decode_to_slice(&stored, &mut hash).is_ok() {
            return Ok((hash, None));
        }
    }
    let token = new_token();
    let hash = hash_token(&token);
    store.set_meta(ADMIN_TOKEN_HASH, &hex::encode(hash)).await?;
    Ok((hash, Some(token)))
}

fn new_token() -> String {
    let mut bytes = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("sb_admin_{}", hex::encode(bytes))
}
