//! [`TestApp`]: one running Snowbound for one test, on the backend it was asked for.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{json, Value};
use snowbound::{App, ServeConfig};
use snowbound_emulator::{Emulator, EmulatorConfig, ReceivedRequest};
use snowbound_store::testing::TestSchema;
use snowbound_store::{LinkState, Store};
use tempfile::TempDir;
use uuid::Uuid;

use crate::{eventually, merge, Api, Backend, ADMIN_TOKEN};

/// Settings fast enough for tests: short backoff, short leases.
pub fn test_config(dir: &TempDir) -> ServeConfig {
    let mut config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_path_buf());
    config.admin_token = Some(ADMIN_TOKEN.into());
    config.retry_base_ms = 20;
    config.retry_max_ms = 200;
    config.servicenow_timeout_ms = 2_000;
    config.lease_ms = 5_000;
    config.rate_limit_cooldown_ms = 150;
    // The emulator listens on 127.0.0.1 over plain http.
    config.allow_local_instances = true;
    config
}

/// A running Snowbound, its emulator and its data; everything goes when it is dropped.
/// Derefs to its [`Api`].
pub struct TestApp {
    /// The node (`None` for [`Spawn::without_engine`], or once a test took it to stop it).
    pub app: Option<App>,
    pub emulator: Emulator,
    pub api: Api,
    pub dir: TempDir,
    /// The store of an engine-less app; a node's is `app.store`, so that it goes (and
    /// SQLite's file lock with it) when a test takes the node out and stops it.
    api_store: Option<Arc<dyn Store>>,
    /// Dropped after the node, so the schema goes once nothing uses it.
    _schema: Option<TestSchema>,
}

impl std::ops::Deref for TestApp {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

type Tweak = Box<dyn FnOnce(&mut ServeConfig) + Send>;

/// How to start a [`TestApp`]; `.await` it.
pub struct Spawn {
    backend: Backend,
    emulator: EmulatorConfig,
    engine: bool,
    tweaks: Vec<Tweak>,
}

impl Spawn {
    pub fn new(backend: Backend) -> Spawn {
        Spawn {
            backend,
            emulator: EmulatorConfig::default(),
            engine: true,
            tweaks: Vec::new(),
        }
    }

    pub fn emulator(mut self, config: EmulatorConfig) -> Spawn {
        self.emulator = config;
        self
    }

    /// Changes the node's settings (applied in order, after [`test_config`]).
    pub fn config(mut self, tweak: impl FnOnce(&mut ServeConfig) + Send + 'static) -> Spawn {
        self.tweaks.push(Box::new(tweak));
        self
    }

    /// Only the HTTP API over the store, as the node serves it, without an engine: what
    /// a test of the API alone needs so that links stay as the API left them.
    pub fn without_engine(mut self) -> Spawn {
        self.engine = false;
        self
    }

    async fn start(self) -> TestApp {
        let emulator = Emulator::start(self.emulator)
            .await
            .expect("the emulator starts");
        let dir = tempfile::tempdir().expect("a temporary directory");
        let schema = match self.backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestSchema::create().await),
        };
        let mut config = test_config(&dir);
        config.database_url = schema.as_ref().map(|s| s.url().to_owned());
        for tweak in self.tweaks {
            tweak(&mut config);
        }
        if self.engine {
            let app = App::start(config).await.expect("Snowbound starts");
            let mut test = TestApp::from_app(app, emulator, dir);
            test._schema = schema;
            test
        } else {
            let (base, store) = serve_api_only(config).await;
            TestApp {
                app: None,
                emulator,
                api: Api::new(base),
                dir,
                api_store: Some(store),
                _schema: schema,
            }
        }
    }
}

impl IntoFuture for Spawn {
    type Output = TestApp;
    type IntoFuture = Pin<Box<dyn Future<Output = TestApp> + Send>>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}

/// The node's router on its store and client, as `App::start` builds them, minus the
/// engine (and its waker's listener).
async fn serve_api_only(config: ServeConfig) -> (String, Arc<dyn Store>) {
    let store = snowbound::app::open_store(&config)
        .await
        .expect("the store opens");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .expect("a port");
    let addr = listener.local_addr().unwrap();
    let client = snowbound_servicenow::Client::new(snowbound_servicenow::ClientConfig {
        request_timeout: config.servicenow_timeout(),
        allow_local_instances: config.allow_local_instances,
        ..snowbound_servicenow::ClientConfig::default()
    })
    .expect("the ServiceNow client builds");
    let state = snowbound_server::AppState::new(
        Arc::clone(&store),
        snowbound_engine::EngineWaker::new(),
        config.public_url(addr),
        snowbound_server::hash_token(ADMIN_TOKEN),
    )
    .with_servicenow_client(client);
    let router = snowbound_server::router(state);
    let limits = config.http_limits();
    tokio::spawn(snowbound_server::listener::serve(
        listener,
        router,
        limits,
        std::future::pending(),
    ));
    (format!("http://{addr}"), store)
}

/// Starts a node on a SQLite data directory another node of this process just left:
/// that node's connections close on their own threads a moment after its shutdown (a
/// killed process's lock goes with it at once), so the start is retried while the
/// database is still in use.
pub async fn start_when_free(config: ServeConfig) -> App {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match App::start(config.clone()).await {
            Ok(app) => return app,
            Err(snowbound::AppError::Store(snowbound_store::StoreError::InUse(_)))
                if std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("the restart failed: {e}"),
        }
    }
}

impl TestApp {
    /// Snowbound on `backend` with the default emulator and [`test_config`].
    pub async fn spawn(backend: Backend) -> TestApp {
        Spawn::new(backend).await
    }

    /// Snowbound on `backend` with this emulator and these settings.
    pub async fn spawn_with(
        backend: Backend,
        emulator: EmulatorConfig,
        tweak: impl FnOnce(&mut ServeConfig) + Send + 'static,
    ) -> TestApp {
        Spawn::new(backend).emulator(emulator).config(tweak).await
    }

    /// Wraps a node a test started itself (its own data directory, runtime or disk).
    pub fn from_app(app: App, emulator: Emulator, dir: TempDir) -> TestApp {
        TestApp {
            api: Api::new(app.url()),
            api_store: None,
            app: Some(app),
            emulator,
            dir,
            _schema: None,
        }
    }

    /// A second node on this app's PostgreSQL database, in-process, with its own engine,
    /// data directory and (unused) emulator: the integrations it syncs are this app's.
    /// # Panics
    /// On a SQLite app: one process holds a SQLite database.
    pub async fn another_node(&self) -> TestApp {
        let schema = self
            ._schema
            .as_ref()
            .expect("several nodes share PostgreSQL");
        let dir = tempfile::tempdir().expect("a temporary directory");
        // Every node of one database opens its secrets with the same key.
        std::fs::copy(
            self.dir.path().join("secret.key"),
            dir.path().join("secret.key"),
        )
        .expect("the first node's key file copies");
        let mut config = test_config(&dir);
        config.database_url = Some(schema.url().to_owned());
        let app = App::start(config).await.expect("the second node starts");
        let emulator = Emulator::start(EmulatorConfig::default())
            .await
            .expect("the emulator starts");
        TestApp::from_app(app, emulator, dir)
    }

    pub fn store(&self) -> &dyn Store {
        match (&self.app, &self.api_store) {
            (Some(app), _) => &*app.store,
            (None, Some(store)) => &**store,
            (None, None) => panic!("the node was taken out of this TestApp"),
        }
    }

    /// A ServiceNow integration on the emulator as admin, with `extra` merged into
    /// the `servicenow` settings.
    pub async fn integration(&self, team: Uuid, forwarding: &str, extra: Value) -> Uuid {
        let mut servicenow = json!({
            "instance_url": self.emulator.base_url(),
            "username": "admin",
            "password": "admin",
            "close_code": "Solution provided",
        });
        merge(&mut servicenow, extra);
        let body = json!({
            "display_name": format!("SN {forwarding}"),
            "root_team_id": team,
            "type": "servicenow",
            "forwarding": forwarding,
            "servicenow": servicenow,
        });
        crate::id(&self.post("/api/v1/integrations", body).await)
    }

    /// Waits until every link of the incident holds its latest revision in ServiceNow.
    pub async fn wait_synced(&self, incident: Uuid) {
        eventually(&format!("incident {incident} synced"), || async {
            let links = self.store().links_of_incident(incident).await.unwrap();
            !links.is_empty()
                && links
                    .iter()
                    .all(|l| l.state == LinkState::Synced && l.synced_rev == l.rev)
        })
        .await;
    }

    /// The incident's one ServiceNow record, if any.
    pub fn record(&self, incident: Uuid) -> Option<std::collections::BTreeMap<String, String>> {
        let mut records = self
            .emulator
            .records_by_correlation_id("incident", &incident.to_string());
        assert!(
            records.len() <= 1,
            "incident {incident} has {} ServiceNow records",
            records.len()
        );
        records.pop()
    }

    /// The Table API writes ServiceNow received for one record (by sys_id or, for creates,
    /// by correlation id), oldest first.
    pub fn writes_for(&self, incident: Uuid) -> Vec<ReceivedRequest> {
        let incident = incident.to_string();
        let sys_id = self
            .emulator
            .records_by_correlation_id("incident", &incident)
            .pop()
            .map(|r| r["sys_id"].clone())
            .unwrap_or_default();
        self.emulator
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .filter(|r| {
                (!sys_id.is_empty() && r.path.ends_with(&sys_id))
                    || r.body.get("correlation_id").and_then(Value::as_str)
                        == Some(incident.as_str())
            })
            .collect()
    }
}
