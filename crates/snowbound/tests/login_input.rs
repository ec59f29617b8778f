//! The login form with input no account can have: it answers "wrong", like any wrong
//! password, on both backends (PostgreSQL cannot even compare a NUL, so such an email
//! must never reach it).

mod support;
mod ui_support;

use reqwest::StatusCode;
use snowbound_emulator::EmulatorConfig;
use snowbound_store::testing::TestSchema;
use support::backend::Backend;
use support::TestApp;
use ui_support::{with_admin, Ui, ADMIN_EMAIL, ADMIN_PASSWORD};

async fn hostile_logins_are_wrong_credentials(backend: Backend) {
    let schema = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestSchema::create().await),
    };
    let url = schema.as_ref().map(|s| s.url().to_owned());
    let t = TestApp::spawn_with(EmulatorConfig::default(), |config| {
        with_admin(config);
        config.database_url = url;
    })
    .await;
    let mut ui = Ui::new(&t.base);
    let long_email = format!("{}@example.com", "a".repeat(300));
    for (email, password) in [
        ("admin\u{0}@example.com", ADMIN_PASSWORD),
        ("\u{0}", ADMIN_PASSWORD),
        (ADMIN_EMAIL, "correct horse\u{0}battery"),
        (long_email.as_str(), ADMIN_PASSWORD),
    ] {
        let page = ui
            .submit(
                "/login",
                "/login",
                &[("email", email), ("password", password)],
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::UNAUTHORIZED,
            "{email:?}: {}",
            page.html
        );
        assert!(page.html.contains("The email or the password is wrong."));
    }
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
}

#[tokio::test]
async fn hostile_logins_are_wrong_credentials_on_sqlite() {
    hostile_logins_are_wrong_credentials(Backend::Sqlite).await;
}

#[tokio::test]
async fn hostile_logins_are_wrong_credentials_on_postgres() {
    hostile_logins_are_wrong_credentials(Backend::Postgres).await;
}
