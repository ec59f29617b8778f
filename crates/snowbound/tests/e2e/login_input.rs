//! The login form with input no account can have: it answers "wrong", like any wrong
//! password, on both backends (PostgreSQL cannot even compare a NUL, so such an email
//! must never reach it).

use reqwest::StatusCode;
use snowbound_emulator::EmulatorConfig;
use snowbound_testkit::ui::{with_admin, Ui, ADMIN_EMAIL, ADMIN_PASSWORD};
use snowbound_testkit::{on_both_backends, Backend, TestApp};

on_both_backends!(hostile_logins_are_wrong_credentials);

async fn hostile_logins_are_wrong_credentials(backend: Backend) {
    let t = TestApp::spawn_with(backend, EmulatorConfig::default(), with_admin).await;
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
