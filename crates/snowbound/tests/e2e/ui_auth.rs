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

/// The create form's fields for `auth` (an `auth_types()` value), as a browser sends them.
fn create_fields(auth: &serde_json::Value) -> Vec<(String, String)> {
    let mut fields = vec![(
        "auth_type".to_owned(),
        auth["type"].as_str().unwrap().to_owned(),
    )];
    for (name, value) in auth.as_object().unwrap() {
        if name != "type" {
            fields.push((name.clone(), value.as_str().unwrap().to_owned()));
        }
    }
    fields
}

fn pairs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Creates an integration of `auth`'s type through the create form, JavaScript off: the
/// type's fields after "Show fields", a refused save that shows no secret back, then the
/// create; the API holds the type with its secrets set, Test Connection passes and an
/// incident syncs as the integration user.
async fn created_through_the_form(index: usize) {
    let auth = auth_types()[index].clone();
    let kind = auth["type"].as_str().unwrap().to_owned();
    let t = TestApp::spawn_with(Backend::Sqlite, instance(), with_admin).await;
    let team = t.team("ops").await;
    let mut ui = Ui::new(&t.base);
    ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let url = t.emulator.base_url();
    let team_id = team.to_string();
    let mut common: Vec<(String, String)> = [
        ("display_name", "ServiceNow"),
        ("root_team_id", team_id.as_str()),
        ("forwarding", "always"),
        ("instance_url", url.as_str()),
        ("table", "incident"),
        ("close_code", "Solution provided"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();

    let form = ui.get("/integrations/new").await;
    for (value, _) in [
        ("basic", ()),
        ("oauth_client_credentials", ()),
        ("oauth_password", ()),
        ("api_key", ()),
    ] {
        assert!(
            form.html.contains(&format!("<option value=\"{value}\"")),
            "{value} offered on the create form"
        );
    }
    let mut shown = common.clone();
    shown.push(("auth_type".into(), kind.clone()));
    shown.push(("show_type".into(), "1".into()));
    let switched = ui
        .submit("/integrations/new", "/integrations", &pairs(&shown))
        .await;
    assert_eq!(switched.status, StatusCode::OK, "{}", switched.html);
    for field in [
        "username",
        "client_id",
        "client_secret",
        "password",
        "api_key",
    ] {
        assert_eq!(
            switched.html.contains(&format!("id=\"{field}\"")),
            auth.get(field).is_some(),
            "{kind}: field {field}"
        );
    }
    assert!(switched
        .html
        .contains(&format!("<option value=\"{kind}\" selected>")));
    let listed = t.get("/api/v1/integrations").await;
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "nothing created");

    // A refused save keeps the type and the names, never a secret.
    let mut bad = common.clone();
    bad[3].1 = "ftp://example.com".into();
    bad.extend(create_fields(&auth));
    let refused = ui
        .submit("/integrations/new", "/integrations", &pairs(&bad))
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.html.contains("must start with https://"));
    assert!(refused
        .html
        .contains(&format!("<option value=\"{kind}\" selected>")));
    if let Some(client_id) = auth["client_id"].as_str() {
        assert!(refused.html.contains(&format!("value=\"{client_id}\"")));
    }
    for secret in ["password", "client_secret", "api_key"] {
        if let Some(value) = auth[secret].as_str() {
            assert!(
                !refused.html.contains(value),
                "{kind}: the {secret} is shown back"
            );
        }
    }

    common.extend(create_fields(&auth));
    let created = ui
        .submit("/integrations/new", "/integrations", &pairs(&common))
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let id = created
        .location
        .unwrap()
        .trim_start_matches("/integrations/")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let stored = t.get(&format!("/api/v1/integrations/{id}")).await;
    assert_eq!(stored["servicenow"]["auth"]["type"], kind.as_str());
    for (flag, secret) in [
        ("password_set", "password"),
        ("client_secret_set", "client_secret"),
        ("api_key_set", "api_key"),
    ] {
        assert_eq!(
            stored[flag].as_bool(),
            Some(auth.get(secret).is_some()),
            "{kind}: {flag}"
        );
    }

    let settings = format!("/integrations/{id}/settings");
    let tested = ui
        .submit(
            &settings,
            &format!("/integrations/{id}/test-connection"),
            &[],
        )
        .await;
    assert!(tested.html.contains("Connection works"), "{}", tested.html);
    if kind.starts_with("oauth") {
        assert!(tested.html.contains("Token obtained"));
    }
    let incident = t.incident(team, "Down via the form", "critical").await;
    t.wait_synced(incident).await;
    assert_eq!(t.record(incident).unwrap()["sys_created_by"], "svc");
}

#[tokio::test]
async fn basic_integration_is_created_through_the_form() {
    created_through_the_form(0).await;
}

#[tokio::test]
async fn oauth_client_credentials_integration_is_created_through_the_form() {
    created_through_the_form(1).await;
}

#[tokio::test]
async fn oauth_password_integration_is_created_through_the_form() {
    created_through_the_form(2).await;
}

#[tokio::test]
async fn api_key_integration_is_created_through_the_form() {
    created_through_the_form(3).await;
}
