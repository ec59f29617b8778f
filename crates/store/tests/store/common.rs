//! Every store test runs twice: on SQLite in a temporary directory and on PostgreSQL in a
//! fresh schema (dropped afterwards) of `SNOWBOUND_TEST_POSTGRES_URL`, or of the process's
//! throwaway cluster when it is unset. One suite, both backends, as DESIGN.md asks.

#![allow(dead_code)] // `sqlite_file.rs` uses only part of it

use std::sync::Arc;

use chrono::Utc;
use secrecy::SecretString;
use snowbound_core::source::{Source, SourceKind};
use snowbound_core::{
    new_id, Credentials, ForwardingMode, Incident, IncidentStatus, Integration, ServiceNowSettings,
    Severity, Team,
};
use snowbound_store::testing::TestSchema;
use snowbound_store::{Migrations, PostgresStore, SecretBox, SqliteStore, Store, StoreError};

pub enum TestDb {
    Sqlite { dir: tempfile::TempDir, url: String },
    Postgres { schema: TestSchema },
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        TestDb::Sqlite { dir, url }
    }

    pub async fn postgres() -> TestDb {
        TestDb::Postgres {
            schema: TestSchema::create().await,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            TestDb::Sqlite { .. } => "sqlite",
            TestDb::Postgres { .. } => "postgres",
        }
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } => url,
            TestDb::Postgres { schema } => schema.url(),
        }
    }

    /// Runs `sql` on a connection of its own, beside the store: for setting up states the
    /// store's API cannot reach (a clock that jumped, an older schema).
    pub async fn raw(&self, sql: &str) {
        use sqlx::Executor;
        match self {
            TestDb::Sqlite { url, .. } => {
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                pool.execute(sql).await.unwrap();
                pool.close().await;
            }
            TestDb::Postgres { schema } => {
                let pool = sqlx::PgPool::connect(schema.url()).await.unwrap();
                pool.execute(sql).await.unwrap();
                pool.close().await;
            }
        }
    }

    /// The first column of every row `sql` returns, as text, read beside the store.
    pub async fn raw_texts(&self, sql: &str) -> Vec<String> {
        use sqlx::Row;
        match self {
            TestDb::Sqlite { url, .. } => {
                let pool = sqlx::SqlitePool::connect(url).await.unwrap();
                let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows.iter().map(|r| r.get::<String, _>(0)).collect()
            }
            TestDb::Postgres { schema } => {
                let pool = sqlx::PgPool::connect(schema.url()).await.unwrap();
                let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows.iter().map(|r| r.get::<String, _>(0)).collect()
            }
        }
    }

    /// How the backend would run `select`: SQLite's `EXPLAIN QUERY PLAN` details, or
    /// PostgreSQL's `EXPLAIN` lines with sequential scans and sorts priced out, so a
    /// tiny test table shows whether an index *can* serve the statement.
    pub async fn raw_plan(&self, select: &str) -> Vec<String> {
        use sqlx::{Connection, Executor, Row};
        let explain = match self {
            TestDb::Sqlite { .. } => format!("EXPLAIN QUERY PLAN {select}"),
            TestDb::Postgres { .. } => format!("EXPLAIN {select}"),
        };
        match self {
            TestDb::Sqlite { url, .. } => {
                let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
                let rows = sqlx::query(&explain).fetch_all(&mut conn).await.unwrap();
                rows.iter().map(|r| r.get::<String, _>("detail")).collect()
            }
            TestDb::Postgres { schema } => {
                let mut conn = sqlx::PgConnection::connect(schema.url()).await.unwrap();
                conn.execute("SET enable_seqscan = off; SET enable_sort = off")
                    .await
                    .unwrap();
                let rows = sqlx::query(&explain).fetch_all(&mut conn).await.unwrap();
                rows.iter().map(|r| r.get::<String, _>(0)).collect()
            }
        }
    }

    /// Opens (and migrates) the database; again and again if asked, as restarted nodes do.
    pub async fn open(&self, secrets: SecretBox) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match self {
            TestDb::Sqlite { url, .. } => Arc::new(SqliteStore::open(url, secrets).await?),
            TestDb::Postgres { schema } => {
                Arc::new(PostgresStore::open(schema.url(), secrets, Migrations::Apply).await?)
            }
        })
    }
}

/// `on_both_backends!(a, b)` turns each `async fn a(db: TestDb)` into the tests
/// `a::sqlite` and `a::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$test($crate::common::TestDb::sqlite().await).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$test($crate::common::TestDb::postgres().await).await
            }
        }
    )*};
}

/// A team and an `always` integration of it, the starting point of most store tests.
pub async fn team_and_integration(store: &dyn Store) -> (Team, Integration) {
    let now = Utc::now();
    let team = Team {
        id: new_id(),
        name: "ops".into(),
        created_at: now,
    };
    store.create_team(&team).await.unwrap();
    let integration = Integration {
        id: new_id(),
        display_name: "SN".into(),
        root_team_id: team.id,
        team_ids: vec![],
        forwarding: ForwardingMode::Always,
        servicenow: ServiceNowSettings::with_defaults(
            "http://127.0.0.1:1".into(),
            "u".into(),
            "Solution provided".into(),
        ),
        created_at: now,
        updated_at: now,
    };
    store
        .create_integration(&integration, &Credentials::basic(SecretString::from("pw")))
        .await
        .unwrap();
    (team, integration)
}

/// An open incident of `team`, for tests that need any incident at all.
/// A source of `kind` in `team`, not stored (a servicenow one still needs its settings).
pub fn source(team: &Team, kind: SourceKind, name: &str) -> Source {
    let now = Utc::now();
    Source {
        id: new_id(),
        team_id: team.id,
        kind,
        name: name.into(),
        severity_map: Default::default(),
        servicenow: None,
        email: None,
        grafana: None,
        json: None,
        created_at: now,
        updated_at: now,
    }
}

/// [`source`], stored with a secret of its own.
pub async fn stored_source(store: &dyn Store, team: &Team, kind: SourceKind) -> Source {
    let source = source(team, kind, "hook");
    store
        .create_source(&source, &SecretString::from(format!("s-{}", source.id)))
        .await
        .unwrap();
    source
}

pub fn incident(team: &Team) -> Incident {
    let now = Utc::now();
    Incident {
        id: new_id(),
        team_id: team.id,
        title: "t".into(),
        description: String::new(),
        severity: Severity::Critical,
        status: IncidentStatus::Open,
        attributes: Default::default(),
        resolve_comment: None,
        source_id: None,
        created_at: now,
        updated_at: now,
    }
}
