//! Fresh PostgreSQL schemas for tests: one per test, dropped when the guard goes, so
//! tests run in parallel on one database without seeing each other's rows.

use sqlx::{Connection, Executor, PgConnection};

mod cluster;

pub use cluster::throwaway_cluster_url;

/// `SNOWBOUND_TEST_POSTGRES_URL` when set; otherwise this process's throwaway cluster,
/// started from the installed PostgreSQL binaries on first use. Panics, saying what to
/// install, when there is neither: the PostgreSQL half of a suite fails, never skips.
pub fn test_postgres_url() -> String {
    match std::env::var("SNOWBOUND_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => throwaway_cluster_url().unwrap_or_else(|e| panic!("{e}")),
    }
}

/// A schema `t_<random>` in the test database. [`TestSchema::url`] connects with it as
/// the search path, so migrations and queries land in it and nowhere else.
pub struct TestSchema {
    base_url: String,
    name: String,
    url: String,
}

impl TestSchema {
    /// Creates the schema. Panics, naming the URL, when PostgreSQL cannot be reached:
    /// the PostgreSQL half of the suite fails rather than skips.
    pub async fn create() -> TestSchema {
        let base_url = test_postgres_url();
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnection::connect(&base_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL for the tests is unreachable at {base_url}: {e}. Start it, point \
                 SNOWBOUND_TEST_POSTGRES_URL at a database this user may create schemas in, \
                 or unset it for a throwaway cluster."
            )
        });
        conn.execute(format!(r#"CREATE SCHEMA "{name}""#).as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot create schema {name} at {base_url}: {e}"));
        let _ = conn.close().await;
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options=-csearch_path%3D{name}");
        TestSchema {
            base_url,
            name,
            url,
        }
    }

    /// A `postgres://` URL whose connections use this schema only.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let base_url = self.base_url.clone();
        let sql = format!(
            r#"SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS "{}" CASCADE"#,
            self.name
        );
        // Drop runs inside the test's runtime, which cannot be blocked on; a thread with
        // its own runtime can.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&base_url)
                    .await
                    .map_err(|e| e.to_string())?;
                conn.execute(sql.as_str())
                    .await
                    .map_err(|e| e.to_string())?;
                conn.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}
