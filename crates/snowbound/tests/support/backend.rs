//! The same end-to-end test on SQLite and on PostgreSQL (a fresh schema per test).

use snowbound_emulator::EmulatorConfig;
use snowbound_store::testing::TestSchema;

use super::TestApp;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running app on `backend`; the schema (PostgreSQL) lives as long as the app.
pub struct BackendApp {
    pub app: TestApp,
    _schema: Option<TestSchema>,
}

impl std::ops::Deref for BackendApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Backend {
    pub async fn spawn(self) -> BackendApp {
        let schema = match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestSchema::create().await),
        };
        let url = schema.as_ref().map(|s| s.url().to_owned());
        let app = TestApp::spawn_with(EmulatorConfig::default(), |config| {
            config.database_url = url;
        })
        .await;
        BackendApp {
            app,
            _schema: schema,
        }
    }
}
