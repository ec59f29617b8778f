//! `/readyz` of the real `snowbound serve` process: 503 "starting" while its migrations
//! have not been applied (the node already listens), 200 once they are and the engine
//! runs, and 503 "shutting_down" after SIGTERM while a slow call keeps it draining.
//! `/healthz` stays liveness.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use snowbound_emulator::{Emulator, EmulatorConfig, Fault};
use snowbound_store::testing::TestSchema;
use snowbound_testkit::node::Node;
use snowbound_testkit::{eventually, Api, ADMIN_TOKEN};
use sqlx::postgres::PgPoolOptions;
use sqlx::Connection;

const SECRET_KEY: &str = "6b6579206f6620746865207265616469e573732074657374732c203332206279";

/// `(status, body)` of a GET, or `None` while nothing listens.
async fn probe(http: &reqwest::Client, url: &str) -> Option<(u16, Value)> {
    let response = http.get(url).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_starting_until_the_migrations_are_applied() {
    let schema = TestSchema::create().await;
    let db = PgPoolOptions::new()
        .max_connections(1)
        .connect(schema.url())
        .await
        .unwrap();
    // sqlx's own bookkeeping table, held exclusively: the node's migrator blocks on
    // its first read of it, so the node stays before its migrations until we let go.
    sqlx::query(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
         checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL)",
    )
    .execute(&db)
    .await
    .unwrap();
    let mut holder = db.acquire().await.unwrap();
    let mut lock = holder.begin().await.unwrap();
    sqlx::query("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let _node = Killed(
        Command::new(crate::SNOWBOUND)
            .arg("serve")
            .env("SNOWBOUND_LISTEN", format!("127.0.0.1:{port}"))
            .env("SNOWBOUND_DATA_DIR", dir.path())
            .env("SNOWBOUND_DATABASE_URL", schema.url())
            .env("SNOWBOUND_SECRET_KEY", SECRET_KEY)
            .env("SNOWBOUND_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    eventually("the node listens", || async {
        probe(&http, &format!("{base}/readyz")).await.is_some()
    })
    .await;
    // `db`'s only connection is the one holding the lock; a second pool looks.
    let observer = PgPoolOptions::new()
        .max_connections(1)
        .connect(schema.url())
        .await
        .unwrap();
    let migrating_now = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'snowbound' \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&observer)
        .await
        .unwrap()
            > 0
    };
    eventually("the node waits for the migrations", migrating_now).await;

    let (status, body) = probe(&http, &format!("{base}/readyz")).await.unwrap();
    assert_eq!(
        (status, &body["status"]),
        (503, &json!("starting")),
        "{body}"
    );
    let (status, body) = probe(&http, &format!("{base}/api/v1/teams")).await.unwrap();
    assert_eq!(
        (status, &body["status"]),
        (503, &json!("starting")),
        "{body}"
    );

    lock.rollback().await.unwrap();
    drop(holder);
    eventually("/readyz says ready once migrated", || async {
        probe(&http, &format!("{base}/readyz"))
            .await
            .is_some_and(|(status, body)| status == 200 && body["status"] == "ready")
    })
    .await;
    let (status, _) = probe(&http, &format!("{base}/healthz")).await.unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_shutting_down_while_a_slow_call_drains_after_sigterm() {
    let emulator = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A call that may take long: the hang below lasts until the emulator stops.
    let slow = [
        ("SNOWBOUND_SERVICENOW_TIMEOUT_MS", "20000"),
        ("SNOWBOUND_LEASE_MS", "60000"),
    ];
    let mut node = Node::start_with(crate::SNOWBOUND, dir.path(), &slow, None).await;
    let http = reqwest::Client::new();
    let readyz = format!("{}/readyz", node.base);
    let (status, body) = probe(&http, &readyz).await.unwrap();
    assert_eq!((status, &body["status"]), (200, &json!("ready")), "{body}");

    let api = Api::new(node.base.clone());
    let team = api.team("core").await;
    api.post(
        "/api/v1/integrations",
        json!({"display_name": "SN", "root_team_id": team, "type": "servicenow", "forwarding": "always",
               "servicenow": {"instance_url": emulator.base_url(), "username": "admin", "password": "admin",
                              "close_code": "Solution provided"}}),
    )
    .await;
    emulator.add_fault(Fault::hang("POST", "/api/now/table/incident"));
    api.incident(team, "In flight at shutdown", "critical")
        .await;
    eventually("the create hangs in flight", || async {
        emulator
            .requests()
            .iter()
            .any(|r| r.method == "POST" && r.fault.as_deref() == Some("hang"))
    })
    .await;

    node.signal("-TERM");
    eventually("/readyz says shutting_down", || async {
        probe(&http, &readyz)
            .await
            .is_some_and(|(status, body)| status == 503 && body["status"] == "shutting_down")
    })
    .await;
    // Liveness is not readiness: the draining node is alive and takes writes.
    let (status, _) = probe(&http, &format!("{}/healthz", node.base))
        .await
        .unwrap();
    assert_eq!(status, 200);

    // Stopping the emulator ends the hung call; the drained node exits cleanly.
    emulator.shutdown().await;
    let status = node.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");
}
