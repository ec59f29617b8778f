//! Boots one Snowbound node: store, sync engine and HTTP API, with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use rand::RngCore;
use snowbound_engine::{Engine, EngineWaker};
use snowbound_server::metrics::Metrics;
use snowbound_server::readiness::{self, Readiness};
use snowbound_server::{hash_token, AppState};
use snowbound_servicenow::{Client, ClientConfig};
use snowbound_store::{
    Heard, Migrations, PostgresStore, SecretBox, SqliteStore, Store, StoreError,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{ConfigError, ServeConfig};
use crate::key_file::{self, KeyFileError};

const ADMIN_TOKEN_HASH: &str = "admin_token_sha256";

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    SecretKey(#[from] snowbound_store::SecretKeyError),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
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
    readiness: Readiness,
    stop_engine: watch::Sender<bool>,
    stop_http: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    engine: JoinHandle<()>,
    /// PostgreSQL only: wakes this node's engine when another node commits a change.
    change_listener: Option<JoinHandle<()>>,
    /// Where email sources' mail is received (`SNOWBOUND_SMTP_LISTEN`), if anywhere.
    pub smtp_addr: Option<SocketAddr>,
    smtp: Option<JoinHandle<()>>,
}

impl App {
    pub async fn start(config: ServeConfig) -> Result<App, AppError> {
        config.validate()?;
        // Listening comes first, so that `/readyz` says "starting" while the database
        // opens and migrates rather than the port refusing connections.
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
        let readiness = Readiness::new();
        let (stop_http, http_stopped) = watch::channel(false);
        let server = tokio::spawn(snowbound_server::listener::serve(
            listener,
            readiness::front(readiness.clone()),
            config.http_limits(),
            wait_for(http_stopped),
        ));
        match Self::open_and_run(
            config,
            addr,
            public_url,
            readiness,
            stop_http.clone(),
            server,
        )
        .await
        {
            Ok(app) => Ok(app),
            Err(e) => {
                let _ = stop_http.send(true);
                Err(e)
            }
        }
    }

    async fn open_and_run(
        config: ServeConfig,
        addr: SocketAddr,
        public_url: String,
        readiness: Readiness,
        stop_http: watch::Sender<bool>,
        server: JoinHandle<std::io::Result<()>>,
    ) -> Result<App, AppError> {
        let (store, postgres) = open_backend(&config).await?;
        if postgres.is_none() {
            // Only one process may use a SQLite database, so every lease in it belongs
            // to a process that is gone: free its links now, not when the leases expire.
            let released = store.release_all_leases().await?;
            if released > 0 {
                tracing::info!(released, "released the leases of the previous process");
            }
        }
        if config.reset_login_limits {
            let cleared = store.clear_login_failures(None).await?;
            tracing::warn!(cleared, "--reset-login-limits: every login wait ended");
        }
        let (admin_token_hash, generated_admin_token) =
            admin_token(&*store, config.admin_token.as_deref()).await?;
        if let (Some(email), Some(password)) = (&config.admin_email, &config.admin_password) {
            if snowbound_server::accounts::ensure_first_admin(&*store, email, password).await? {
                tracing::info!(%email, "created the first web UI administrator");
            }
        }

        let client = Client::new(ClientConfig {
            request_timeout: config.servicenow_timeout(),
            allow_local_instances: config.allow_local_instances,
            ..ClientConfig::default()
        })?;
        let waker = EngineWaker::new();
        let state = AppState::new(
            Arc::clone(&store),
            waker.clone(),
            public_url.clone(),
            admin_token_hash,
        )
        .with_servicenow_client(client.clone())
        .with_ingest_rate_limit(std::num::NonZeroU32::new(config.ingest_rate_limit));
        let lookups = state.lookups();
        let change_listener = postgres.map(|pg| {
            // Other nodes' changes cannot be heard before the listener is in place.
            lookups.heard(Heard::Deaf);
            let (waker, lookups) = (waker.clone(), Arc::clone(&lookups));
            pg.spawn_change_listener(move |news| {
                if matches!(news, Heard::Listening | Heard::LinksDue) {
                    waker.wake();
                }
                lookups.heard(news);
            })
        });
        let engine = Engine::new(
            Arc::clone(&store),
            client,
            waker.clone(),
            config.engine_config(public_url.clone()),
        );
        engine.share_lookups(lookups);

        let metrics = Metrics::new(config.metrics_token.clone());
        engine.observe_calls({
            let metrics = metrics.clone();
            Arc::new(move |call: &snowbound_store::ApiCallRecord| metrics.engine_call(call))
        });
        engine.observe(Arc::new(metrics.clone()));
        metrics.count_from(Arc::clone(&store), Some(engine.clone()));
        let (stop_engine, engine_stopped) = watch::channel(false);
        let state = state.with_metrics(metrics.clone()).with_engine(&engine);
        readiness.set_engine_running(true);
        let engine = tokio::spawn({
            let readiness = readiness.clone();
            async move {
                engine.run(wait_for(engine_stopped)).await;
                readiness.set_engine_running(false);
            }
        });
        let state = match &config.smtp_domain {
            Some(domain) => state.with_smtp_domain(domain.clone()),
            None => state,
        };
        let (smtp_addr, smtp) = match config.smtp_listen {
            Some(listen) => {
                let listener =
                    TcpListener::bind(listen)
                        .await
                        .map_err(|source| AppError::Listen {
                            addr: listen,
                            source,
                        })?;
                let bound = listener.local_addr().map_err(|source| AppError::Listen {
                    addr: listen,
                    source,
                })?;
                tracing::info!(addr = %bound, "receiving email sources' mail over SMTP");
                let smtp = tokio::spawn(snowbound_server::smtp::serve(
                    listener,
                    state.clone(),
                    snowbound_server::smtp::SmtpLimits::default(),
                    wait_for(stop_http.subscribe()),
                ));
                (Some(bound), Some(smtp))
            }
            None => (None, None),
        };
        readiness.serve(
            metrics.instrument(snowbound_server::router(state)),
            Arc::clone(&store),
        );
        tracing::info!(%addr, %public_url, "Snowbound is listening");
        Ok(App {
            addr,
            public_url,
            generated_admin_token,
            store,
            waker,
            readiness,
            stop_engine,
            stop_http,
            server,
            engine,
            change_listener,
            smtp_addr,
            smtp,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Says "shutting_down" on `/readyz`, lets the reconciles in flight finish while
    /// still serving requests (a load balancer needs an answer to stop sending traffic;
    /// what arrives meanwhile is stored, and synced by the next node or start), then
    /// stops taking requests and lets those in flight finish.
    pub async fn shutdown(self) {
        self.readiness.shutting_down();
        let _ = self.stop_engine.send(true);
        let _ = self.engine.await;
        let _ = self.stop_http.send(true);
        if let Ok(Err(e)) = self.server.await {
            tracing::warn!(error = %e, "HTTP server ended with an error");
        }
        if let Some(smtp) = self.smtp {
            let _ = smtp.await;
        }
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
    let sqlite = database_url.starts_with("sqlite:");
    let postgres =
        database_url.starts_with("postgres://") || database_url.starts_with("postgresql://");
    if !sqlite && !postgres {
        return Err(AppError::DatabaseUrl(database_url));
    }
    if sqlite {
        key_file::ensure_writable_dir(&config.data_dir)?;
    }
    // A key file made now is kept only once the database has accepted its key, so a
    // refused start leaves nothing behind.
    let (secrets, new_key_file) = match config
        .secret_key
        .as_deref()
        .filter(|k| !k.trim().is_empty())
    {
        Some(key) => (
            SecretBox::from_env_or_file(Some(key), &config.data_dir)?,
            None,
        ),
        None => key_file::load_or_prepare(&config.data_dir)?,
    };
    let opened = if sqlite {
        SqliteStore::open(&database_url, secrets)
            .await
            .map(|store| (Arc::new(store) as Arc<dyn Store>, None))
    } else {
        let migrations = if config.no_migrate {
            Migrations::RequireApplied
        } else {
            Migrations::Apply
        };
        PostgresStore::open(&database_url, secrets, migrations)
            .await
            .map(|store| (Arc::new(store.clone()) as Arc<dyn Store>, Some(store)))
    };
    match opened {
        Ok(opened) => {
            if let Some(new) = new_key_file {
                new.keep()?;
            }
            Ok(opened)
        }
        Err(e) => {
            let refused = wrong_key(e);
            match (new_key_file, refused) {
                (Some(new), AppError::WrongSecretKey(detail)) => {
                    Err(AppError::KeyFile(new.refused(detail)))
                }
                (new, refused) => {
                    drop(new);
                    Err(refused)
                }
            }
        }
    }
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
