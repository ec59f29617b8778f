//! The settings page's Authorization section over plain HTTP, JavaScript off: switching
//! the type re-renders its fields, OAuth settings are saved through the form, secrets
//! stay write-only ("set"), and Test Connection shows the token check.

use reqwest::StatusCode;
use serde_json::json;
use snowbound_testkit::ui::{with_admin, Ui, ADMIN_EMAIL, ADMIN_PASSWORD};
use snowbound_testkit::{Backend, TestApp};

use crate::auth_types::{auth_types, create, instance};

const CLIENT_ID: &str = "snowbound-e2e";
const CLIENT_SECRET: &str = "e2e-cl1ent-s3cret";

#[tokio::test]
async fn oauth_settings_are_saved_through_the_form_without_javascript() {
    let t = TestApp::spawn_with(Backend::Sqlite, instance(), with_admin).await;
    let team = t.team("ops").await;
    let id = create(&t, team, auth_types()[0].clone()).await.id();
    let settings = format!("/integrations/{id}/settings");
    let action = format!("/integrations/{id}/settings/authorization");
    let url = t.emulator.base_url();
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    let page = ui.get(&settings).await;
    assert_eq!(page.status, StatusCode::OK);
    for value in [
        "basic",
        "oauth_client_credentials",
        "oauth_password",
        "api_key",
    ] {
        assert!(
            page.html.contains(&format!("<option value=\"{value}\"")),
            "{value} offered"
        );
    }
    assert!(page.html.contains("href=\"/docs/servicenow-setup\""));
    assert!(page.html.contains("id=\"username\"") && !page.html.contains("id=\"client_id\""));

    // "Show fields" re-renders for the chosen type and saves nothing.
    let switched = ui
        .submit(
            &settings,
            &action,
            &[
                ("instance_url", &url),
                ("auth_type", "oauth_client_credentials"),
                ("table", "incident"),
                ("show_type", "1"),
            ],
        )
        .await;
    assert_eq!(switched.status, StatusCode::OK);
    assert!(switched.html.contains("id=\"client_id\""));
    assert!(switched
        .html
        .contains("id=\"client_secret\" name=\"client_secret\" type=\"password\""));
    assert!(!switched.html.contains("id=\"username\""));
    let stored = t.get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(stored["servicenow"]["auth"]["type"], "basic");

    // Saving without the client secret names it; with it, OAuth is stored.
    let fields = |secret: &'static str| {
        vec![
            ("instance_url", url.clone()),
            ("auth_type", "oauth_client_credentials".to_owned()),
            ("client_id", CLIENT_ID.to_owned()),
            ("client_secret", secret.to_owned()),
            ("table", "incident".to_owned()),
        ]
    };
    let missing = fields("");
    let missing: Vec<(&str, &str)> = missing.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = ui.submit(&settings, &action, &missing).await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.html
    );
    assert!(refused.html.contains("Not saved"), "{}", refused.html);
    assert!(
        refused.html.contains("id=\"client_id\""),
        "the type stays as chosen"
    );

    let full = fields(CLIENT_SECRET);
    let full: Vec<(&str, &str)> = full.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let saved = ui.submit(&settings, &action, &full).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let stored = t.get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(
        stored["servicenow"]["auth"],
        json!({"type": "oauth_client_credentials", "client_id": CLIENT_ID})
    );
    assert_eq!(
        (
            stored["client_secret_set"].as_bool(),
            stored["password_set"].as_bool()
        ),
        (Some(true), Some(false))
    );

    let page = ui.get(&settings).await;
    assert!(!page.html.contains(CLIENT_SECRET));
    assert!(page.html.contains("(set)"));
    // Saved again with the secret left empty: the stored one is kept.
    let saved = ui.submit(&settings, &action, &missing).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let tested = ui
        .submit(
            &settings,
            &format!("/integrations/{id}/test-connection"),
            &[],
        )
        .await;
    assert!(tested.html.contains("Connection works"), "{}", tested.html);
    assert!(tested.html.contains("Token obtained"));
    assert!(!tested.html.contains(CLIENT_SECRET));

    // Another client without its secret is refused, naming the client secret.
    let mut other: Vec<(&str, &str)> = missing.clone();
    other[2] = ("client_id", "another-client");
    let refused = ui.submit(&settings, &action, &other).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused.html.contains("client secret is only sent"),
        "{}",
        refused.html
    );

    let guide = ui.get("/docs/servicenow-setup").await;
    assert_eq!(guide.status, StatusCode::OK);
    assert!(guide.html.contains("OAuth client credentials"));
}
