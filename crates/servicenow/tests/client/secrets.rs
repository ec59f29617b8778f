//! Secrets must never leave their headers or token requests: passwords, client secrets,
//! API keys and OAuth tokens are not in ApiCalls (which users see in the API call log),
//! not in failures or Test Connection reports, not in Debug output.

use crate::common::*;
use base64::Engine;
use snowbound_emulator::Fault;
use snowbound_servicenow::ApiCall;

fn assert_no_secret(text: &str) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bot:{SECRET}"));
    assert!(!text.contains(SECRET), "password leaked: {text}");
    assert!(!text.contains(&basic), "Basic credentials leaked: {text}");
    assert!(
        !text.to_ascii_lowercase().contains("authorization"),
        "header leaked: {text}"
    );
}

#[tokio::test]
async fn no_api_call_or_failure_contains_the_password() {
    let emu = emulator_with_users(&[&format!("bot:{SECRET}:itil")]).await;
    let conn = connection(&emu.base_url(), "bot", SECRET, "incident");
    let client = client();
    let mut calls: Vec<ApiCall> = Vec::new();
    let mut texts: Vec<String> = Vec::new();

    let created = client.create(&conn, &new_incident("inc-secret")).await;
    calls.extend(created.calls);
    let sys_id = created.outcome.unwrap().sys_id;
    let updated = client
        .update(&conn, &sys_id, &fields(&[("state", "6")]))
        .await;
    texts.push(format!("{:?}", updated.outcome));
    calls.extend(updated.calls);
    let found = client.find_by_correlation_id(&conn, "inc-secret").await;
    calls.extend(found.calls);
    let choices = client.choices(&conn, "state").await; // 403 for itil
    texts.push(choices.outcome.unwrap_err().to_string());
    calls.extend(choices.calls);
    let (report, test_calls) = client.test_connection(&conn).await;
    texts.push(serde_json::to_string(&report).unwrap());
    calls.extend(test_calls);

    emu.add_fault(Fault::drop_after_write("POST", "/api/now/table/incident"));
    let dropped = client.create(&conn, &new_incident("inc-secret-2")).await;
    let failure = dropped.outcome.unwrap_err();
    texts.push(failure.to_string());
    texts.push(format!("{failure:?}"));
    texts.push(failure.user_message("incident"));
    calls.extend(dropped.calls);

    let wrong = connection(
        &emu.base_url(),
        "bot",
        &format!("{SECRET}-wrong"),
        "incident",
    );
    let refused = client.create(&wrong, &new_incident("inc-secret-3")).await;
    texts.push(refused.outcome.unwrap_err().to_string());
    calls.extend(refused.calls);

    let unreachable = connection(&closed_port_url().await, "bot", SECRET, "incident");
    let nothing = client
        .create(&unreachable, &new_incident("inc-secret-4"))
        .await;
    texts.push(nothing.outcome.unwrap_err().to_string());
    calls.extend(nothing.calls);

    assert!(calls.len() >= 8, "{calls:?}");
    assert_no_secret(&serde_json::to_string(&calls).unwrap());
    assert_no_secret(&format!("{calls:?}"));
    for text in &texts {
        assert_no_secret(text);
    }
    assert_no_secret(&format!("{conn:?} {client:?}"));
}

const CLIENT_SECRET: &str = "Cl1ent-S3cret-very-secret";
const API_KEY: &str = "Ap1-K3y-very-secret";

/// Runs of URL-safe characters as long as the emulator's tokens (43): a token that
/// reached the log would be one. sys_ids are 32 hex digits, so they never count.
fn token_like(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .filter(|run| run.len() >= 40)
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn no_api_call_or_failure_contains_a_client_secret_api_key_or_token() {
    use snowbound_emulator::{property, ApiKey, EmulatorConfig, OAuthClient, User};
    use snowbound_servicenow::Auth;

    let emu = snowbound_emulator::Emulator::start(EmulatorConfig {
        users: vec![User::new("bot", SECRET, &["itil"])],
        oauth_clients: vec![OAuthClient::new("cid", CLIENT_SECRET).with_application_user("bot")],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    emu.set_property(property::CLIENT_CREDENTIALS_ENABLED, "true");
    emu.add_api_key(ApiKey::new(API_KEY, "bot"));
    let client = client();
    let password_grant = with_auth(
        &emu.base_url(),
        Auth::OAuthPassword {
            client_id: "cid".into(),
            client_secret: secret(CLIENT_SECRET),
            username: "bot".into(),
            password: secret(SECRET),
        },
    );
    let client_credentials = with_auth(
        &emu.base_url(),
        Auth::OAuthClientCredentials {
            client_id: "cid".into(),
            client_secret: secret(CLIENT_SECRET),
        },
    );
    let key = with_auth(
        &emu.base_url(),
        Auth::ApiKey {
            api_key: secret(API_KEY),
        },
    );
    let mut calls: Vec<ApiCall> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    for conn in [&password_grant, &client_credentials, &key] {
        let created = client.create(conn, &new_incident("inc-oauth")).await;
        texts.push(format!("{:?}", created.outcome));
        calls.extend(created.calls);
        let (report, test_calls) = client.test_connection(conn).await;
        texts.push(serde_json::to_string(&report).unwrap());
        calls.extend(test_calls);
        texts.push(format!("{conn:?} {client:?}"));
    }
    // Renewals: with the refresh token, and after the instance forgot everything.
    emu.expire_tokens(false);
    let renewed = client
        .create(&password_grant, &new_incident("inc-renewed"))
        .await;
    calls.extend(renewed.calls);
    emu.revoke_tokens();
    let renewed = client
        .create(&password_grant, &new_incident("inc-revoked"))
        .await;
    calls.extend(renewed.calls);
    // Refusals: a wrong secret, and a key without its access policy.
    let wrong = with_auth(
        &emu.base_url(),
        Auth::OAuthClientCredentials {
            client_id: "cid".into(),
            client_secret: secret(&format!("{CLIENT_SECRET}-wrong")),
        },
    );
    let refused = client.create(&wrong, &new_incident("inc-wrong")).await;
    let failure = refused.outcome.unwrap_err();
    texts.push(format!(
        "{failure} {failure:?} {}",
        failure.user_message("incident")
    ));
    calls.extend(refused.calls);
    let (report, test_calls) = client.test_connection(&key).await;
    texts.push(serde_json::to_string(&report).unwrap());
    calls.extend(test_calls);

    let token_calls: Vec<&ApiCall> = calls
        .iter()
        .filter(|c| c.url.ends_with("/oauth_token.do"))
        .collect();
    assert!(token_calls.len() >= 6, "{token_calls:?}");
    for call in &token_calls {
        let body = call.request_body.as_deref().unwrap();
        assert!(body.contains("client_secret=%5Bredacted%5D"), "{body}");
        if let Some(answer) = call.response_body.as_deref() {
            let answer: serde_json::Value = serde_json::from_str(answer).unwrap();
            if answer.get("access_token").is_some() {
                assert_eq!(answer["access_token"], "[redacted]");
            }
        }
    }
    let mut all = vec![serde_json::to_string(&calls).unwrap(), format!("{calls:?}")];
    all.extend(texts);
    for text in &all {
        assert_no_secret(text);
        assert!(
            !text.contains(CLIENT_SECRET),
            "client secret leaked: {text}"
        );
        assert!(!text.contains(API_KEY), "API key leaked: {text}");
        assert_eq!(
            token_like(text),
            Vec::<String>::new(),
            "token leaked: {text}"
        );
    }
    // The scan does see a token: one fetched here, outside the client, is found.
    let form = [
        ("grant_type", "password"),
        ("client_id", "cid"),
        ("client_secret", CLIENT_SECRET),
        ("username", "bot"),
        ("password", SECRET),
    ];
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/oauth_token.do", emu.base_url()))
        .form(&form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = answer["access_token"].as_str().unwrap();
    assert_eq!(token_like(&format!("x {token} y")), [token]);
}
