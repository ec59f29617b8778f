//! Conformance: OAuth tokens, API keys and the Basic authentication restriction
//! (docs/servicenow/AUTH_AND_INBOUND.md §1.1–§1.4). Test names start with the section.

use std::time::Duration;

use crate::common::*;
use reqwest::{Method, Response};
use serde_json::{json, Value};
use snowbound_emulator::{property, ApiKey, EmulatorConfig, OAuthClient, User, BASIC_AUTH_ROLE};

const CLIENT_ID: &str = "snowbound-client";
const CLIENT_SECRET: &str = "cl1ent-s3cret";
const AGENT_PASSWORD: &str = "agent-pa55word";

fn config() -> EmulatorConfig {
    EmulatorConfig {
        users: vec![
            User::new("admin", "admin", &["admin"]),
            User::new("agent", AGENT_PASSWORD, &["itil"]),
            User::new("appuser", "unused-pw", &["itil"]),
        ],
        oauth_clients: vec![
            OAuthClient::new(CLIENT_ID, CLIENT_SECRET).with_application_user("appuser")
        ],
        ..EmulatorConfig::default()
    }
}

impl Env {
    async fn token(&self, form: &[(&str, &str)]) -> Response {
        self.http
            .post(self.url("/oauth_token.do"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn password_grant(&self) -> Value {
        let resp = self
            .token(&[
                ("grant_type", "password"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("username", "agent"),
                ("password", AGENT_PASSWORD),
            ])
            .await;
        assert_eq!(resp.status(), 200);
        body(resp).await
    }

    async fn bearer_get(&self, token: &str) -> Response {
        self.http
            .get(self.url("/api/now/table/incident"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    async fn control(&self, method: Method, path: &str, body: Value) -> Response {
        self.http
            .request(method, self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The request log as the control API shows it, as text, to look for leaked secrets.
    async fn log_text(&self) -> String {
        self.http
            .get(self.url("/emulator/requests"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

fn access_denied() -> Value {
    json!({"error": "server_error", "error_description": "access_denied"})
}

const NOT_AUTHENTICATED: &str = r#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#;

#[tokio::test]
async fn s1_3_password_grant_answers_bearer_tokens_that_work_on_the_table_api() {
    let env = start_with(config()).await;
    let t = env.password_grant().await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 1800, "§1.2 default lifespan");
    assert_eq!(t["scope"], "useraccount");
    let access = t["access_token"].as_str().unwrap();
    assert!(t["refresh_token"].as_str().is_some_and(|r| r != access));

    let resp = env
        .http
        .post(env.url("/api/now/table/incident"))
        .bearer_auth(access)
        .json(&json!({"short_description": "via OAuth"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(body(resp).await["result"]["sys_created_by"], "agent");

    let log = env.emu.requests();
    let token_calls: Vec<_> = log.iter().filter(|r| r.path == "/oauth_token.do").collect();
    assert_eq!(token_calls.len(), 1, "token calls are in the request log");
    assert_eq!(token_calls[0].status, Some(200));
    assert_eq!(token_calls[0].user.as_deref(), Some("agent"));
    assert_eq!(token_calls[0].body["grant_type"], "password");
    assert_eq!(token_calls[0].body["client_secret"], "[redacted]");
    assert_eq!(token_calls[0].body["password"], "[redacted]");
    let create = log
        .iter()
        .find(|r| r.method == "POST" && r.path.starts_with("/api"))
        .unwrap();
    assert_eq!(create.auth.as_deref(), Some("bearer"));
    assert_eq!(create.user.as_deref(), Some("agent"));
    let text = env.log_text().await;
    for secret in [
        CLIENT_SECRET,
        AGENT_PASSWORD,
        access,
        t["refresh_token"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "request log leaks a secret");
    }
    assert_eq!(env.emu.tokens_issued()["password"], 1);
}

#[tokio::test]
async fn s1_3_refresh_token_grant_renews_an_expired_access_token() {
    let env = start_with(config()).await;
    let t = env.password_grant().await;
    let old = t["access_token"].as_str().unwrap();
    let refresh = t["refresh_token"].as_str().unwrap();
    env.emu.expire_tokens(false);
    let resp = env.bearer_get(old).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.text().await.unwrap(), NOT_AUTHENTICATED);

    let resp = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", refresh),
        ])
        .await;
    assert_eq!(resp.status(), 200);
    let renewed = body(resp).await;
    let new = renewed["access_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_eq!(renewed["refresh_token"], refresh);
    assert_eq!(env.bearer_get(new).await.status(), 200);

    // Another client cannot use this client's refresh token.
    env.emu
        .add_oauth_client(OAuthClient::new("other", "other-secret"));
    let resp = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", "other"),
            ("client_secret", "other-secret"),
            ("refresh_token", refresh),
        ])
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(body(resp).await, access_denied());
}

#[tokio::test]
async fn s1_3_bad_client_or_user_credentials_answer_401_access_denied() {
    let env = start_with(config()).await;
    let base = [("grant_type", "password"), ("username", "agent")];
    for (client_id, secret, password) in [
        (CLIENT_ID, "wrong", AGENT_PASSWORD),
        ("unknown", CLIENT_SECRET, AGENT_PASSWORD),
        (CLIENT_ID, CLIENT_SECRET, "wrong"),
    ] {
        let mut form = base.to_vec();
        form.extend([
            ("client_id", client_id),
            ("client_secret", secret),
            ("password", password),
        ]);
        let resp = env.token(&form).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(body(resp).await, access_denied());
    }
    let resp = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", "made-up"),
        ])
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(body(resp).await, access_denied());
    let resp = env.token(&[("grant_type", "implicit")]).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(body(resp).await["error"], "unsupported_grant_type");
    assert!(env.emu.tokens_issued().is_empty());
}

#[tokio::test]
async fn s1_3_token_parameters_in_the_url_or_a_json_body_are_refused() {
    let env = start_with(config()).await;
    let resp = env
        .http
        .post(env.url(&format!(
            "/oauth_token.do?grant_type=password&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}&username=agent&password={AGENT_PASSWORD}"
        )))
        .form(&[("scope", "useraccount")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(body(resp).await["error"], "invalid_request");
    let resp = env
        .http
        .post(env.url("/oauth_token.do"))
        .json(&json!({"grant_type": "password", "client_id": CLIENT_ID,
                      "client_secret": CLIENT_SECRET, "username": "agent", "password": AGENT_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(body(resp).await["error"], "invalid_request");
    assert!(env.emu.tokens_issued().is_empty());
    let text = env.log_text().await;
    assert!(
        !text.contains(CLIENT_SECRET) && !text.contains(AGENT_PASSWORD),
        "{text}"
    );

    // With the property off (an old instance), query parameters are read too.
    env.emu
        .set_property(property::PARAMETERS_IN_POST_BODY_ONLY, "false");
    let resp = env
        .http
        .post(env.url(&format!(
            "/oauth_token.do?grant_type=password&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"
        )))
        .form(&[("username", "agent"), ("password", AGENT_PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn s1_2_client_credentials_is_refused_until_the_property_is_set_then_acts_as_the_app_user() {
    let env = start_with(config()).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    let resp = env.token(&form).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(body(resp).await["error"], "unsupported_grant_type");

    let resp = env
        .control(
            Method::PUT,
            "/emulator/properties",
            json!({"glide.oauth.inbound.client.credential.grant_type.enabled": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        body(resp).await["properties"][property::CLIENT_CREDENTIALS_ENABLED],
        "true"
    );
    let resp = env.token(&form).await;
    assert_eq!(resp.status(), 200);
    let t = body(resp).await;
    assert_eq!(t["token_type"], "Bearer");
    assert!(
        t.get("refresh_token").is_none(),
        "no refresh token for client credentials"
    );
    let resp = env
        .http
        .post(env.url("/api/now/table/incident"))
        .bearer_auth(t["access_token"].as_str().unwrap())
        .json(&json!({"short_description": "machine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(body(resp).await["result"]["sys_created_by"], "appuser");

    // A client without an OAuth Application User cannot use the grant.
    env.emu
        .add_oauth_client(OAuthClient::new("bare", "bare-secret"));
    let resp = env
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "bare"),
            ("client_secret", "bare-secret"),
        ])
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(body(resp).await, access_denied());
}

#[tokio::test]
async fn s1_2_token_lifespan_is_configurable_and_revoked_or_expired_tokens_are_401() {
    let env = start_with(EmulatorConfig {
        access_token_lifespan: Duration::from_secs(60),
        ..config()
    })
    .await;
    let t = env.password_grant().await;
    assert_eq!(t["expires_in"], 60);
    let access = t["access_token"].as_str().unwrap().to_string();
    assert_eq!(env.bearer_get(&access).await.status(), 200);

    // "The instance forgot my token."
    let resp = env
        .control(Method::DELETE, "/emulator/oauth/tokens", json!({}))
        .await;
    assert_eq!(resp.status(), 204);
    let resp = env.bearer_get(&access).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.text().await.unwrap(), NOT_AUTHENTICATED);
    assert_eq!(env.bearer_get("never-issued").await.status(), 401);

    // A zero lifespan issues tokens that are already expired.
    let resp = env
        .control(
            Method::PUT,
            "/emulator/oauth/lifespans",
            json!({"access_token_s": 0}),
        )
        .await;
    assert_eq!(body(resp).await["access_token_lifespan_s"], 0);
    let t = env.password_grant().await;
    assert_eq!(
        env.bearer_get(t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );

    // Expiring through the control API, refresh tokens included.
    env.emu
        .set_token_lifespans(Duration::from_secs(60), Duration::from_secs(60));
    let t = env.password_grant().await;
    let resp = env
        .control(
            Method::POST,
            "/emulator/oauth/tokens/expire",
            json!({"refresh_tokens": true}),
        )
        .await;
    assert_eq!(resp.status(), 204);
    assert_eq!(
        env.bearer_get(t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
    let resp = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", t["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn s1_4_api_key_is_refused_without_an_access_policy_then_maps_to_its_user() {
    let env = start_with(config()).await;
    let key = "k3y-for-agent-0123456789";
    let resp = env
        .control(
            Method::POST,
            "/emulator/api_keys",
            json!({"key": key, "user": "agent"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    assert!(
        !resp.text().await.unwrap().contains(key),
        "keys are not shown"
    );

    let by_header = || {
        env.http
            .get(env.url("/api/now/table/incident"))
            .header("x-sn-apikey", key)
    };
    let resp = by_header().send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        body(resp).await,
        error(
            "User Not Authenticated",
            Some("Token Based Auth isn't allowed in the Global REST API Policy")
        )
    );

    let resp = env
        .control(
            Method::PUT,
            "/emulator/api_key_policy",
            json!({"exists": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(by_header().send().await.unwrap().status(), 200);
    let resp = env
        .http
        .post(env.url(&format!("/api/now/table/incident?x-sn-apikey={key}")))
        .json(&json!({"short_description": "keyed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(body(resp).await["result"]["sys_created_by"], "agent");
    let resp = env
        .http
        .get(env.url("/api/now/table/incident"))
        .header("x-sn-apikey", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), NOT_AUTHENTICATED);

    let mut expired = ApiKey::new("old-key", "agent");
    expired.expires_at = Some(chrono::Utc::now() - chrono::Duration::seconds(1));
    env.emu.add_api_key(expired);
    let resp = env
        .http
        .get(env.url("/api/now/table/incident"))
        .header("x-sn-apikey", "old-key")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let log = env.emu.requests();
    assert!(log.iter().any(|r| r.auth.as_deref() == Some("api_key")));
    assert!(
        !env.log_text().await.contains(key),
        "request log leaks the API key"
    );
}

#[tokio::test]
async fn s1_1_basic_restriction_refuses_accounts_neither_wsao_nor_holding_the_role() {
    let env = start_with(EmulatorConfig {
        users: vec![
            User::new("admin", "admin", &["admin"]),
            "integration:pw:itil:wsao".parse().unwrap(),
            User::new("kept", "pw", &["itil", BASIC_AUTH_ROLE]),
            User::new("agent", AGENT_PASSWORD, &["itil"]),
        ],
        ..config()
    })
    .await;
    assert_eq!(
        env.get("/api/now/table/incident").await.status(),
        200,
        "off by default"
    );
    let resp = env
        .control(
            Method::PUT,
            "/emulator/properties",
            json!({"glide.authenticate.basic_auth.restriction.enforce": "true"}),
        )
        .await;
    assert_eq!(resp.status(), 200);

    let get_as = |user: &str, pw: &str| {
        env.as_user(Method::GET, "/api/now/table/incident", user, pw)
            .send()
    };
    let resp = get_as("admin", "admin").await.unwrap();
    assert_eq!(resp.status(), 401, "even admin with a valid password");
    assert_eq!(
        body(resp).await,
        error(
            "User is not authenticated",
            Some("Required to provide Auth information")
        )
    );
    assert_eq!(get_as("integration", "pw").await.unwrap().status(), 200);
    assert_eq!(get_as("kept", "pw").await.unwrap().status(), 200);
    // A wrong password is still the ordinary 401.
    let resp = get_as("kept", "nope").await.unwrap();
    assert_eq!(resp.text().await.unwrap(), NOT_AUTHENTICATED);

    // Converting the account to web-service-access-only lets it back in.
    assert_eq!(get_as("agent", AGENT_PASSWORD).await.unwrap().status(), 401);
    let resp = env
        .control(
            Method::PATCH,
            "/emulator/users/agent",
            json!({"web_service_access_only": true}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(get_as("agent", AGENT_PASSWORD).await.unwrap().status(), 200);
    let agent_id = env.emu.user_sys_id("agent").unwrap();
    assert_eq!(
        env.emu.record("sys_user", &agent_id).unwrap()["web_service_access_only"],
        "true"
    );

    // OAuth is what the restriction pushes integrations to: Bearer is not restricted.
    env.emu.set_basic_auth_restriction(true);
    env.emu
        .upsert_user(User::new("agent", AGENT_PASSWORD, &["itil"]));
    let t = env.password_grant().await;
    assert_eq!(
        env.bearer_get(t["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    assert_eq!(get_as("agent", AGENT_PASSWORD).await.unwrap().status(), 401);
}

#[tokio::test]
async fn control_api_registers_clients_and_users_and_shows_no_secrets() {
    let env = start_with(config()).await;
    let resp = env
        .control(
            Method::POST,
            "/emulator/users",
            json!({"name": "svc", "password": "svc-pw-123", "roles": ["itil"]}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let resp = env
        .control(
            Method::POST,
            "/emulator/oauth/clients",
            json!({"client_id": "c2", "client_secret": "c2-secret-xyz", "application_user": "svc"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let resp = env
        .token(&[
            ("grant_type", "password"),
            ("client_id", "c2"),
            ("client_secret", "c2-secret-xyz"),
            ("username", "svc"),
            ("password", "svc-pw-123"),
        ])
        .await;
    assert_eq!(resp.status(), 200);
    let summary = env
        .http
        .get(env.url("/emulator/oauth"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(summary.contains("\"c2\""));
    assert!(!summary.contains("c2-secret-xyz") && !summary.contains(CLIENT_SECRET));
    let summary: Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["issued"]["password"], 1);
    assert_eq!(summary["live_access_tokens"], 1);
    let users = env
        .http
        .get(env.url("/emulator/users"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(users.contains("\"svc\"") && !users.contains("svc-pw-123"));

    // Reset goes back to the configuration: the added client and user are gone.
    env.emu.reset();
    let resp = env
        .token(&[
            ("grant_type", "password"),
            ("client_id", "c2"),
            ("client_secret", "c2-secret-xyz"),
            ("username", "svc"),
            ("password", "svc-pw-123"),
        ])
        .await;
    assert_eq!(resp.status(), 401);
    assert!(env.emu.tokens_issued().is_empty());
}

#[tokio::test]
async fn html_page_documents_authentication_with_curl_lines_and_shows_no_secrets() {
    let env = start_with(EmulatorConfig {
        business_rules: vec![snowbound_emulator::BusinessRule::new(
            "incident",
            "http://127.0.0.1:9/hook/secret-path-token",
        )],
        ..config()
    })
    .await;
    env.emu.set_basic_auth_restriction(true);
    let html = env
        .http
        .get(env.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("Basic authentication restriction enforced: yes"));
    assert!(html.contains("snowbound-client (application user appuser)"));
    assert!(html.contains(&format!("{}/oauth_token.do", env.emu.base_url())));
    assert!(html.contains("incident → http://127.0.0.1:9"));
    assert!(!html.contains(CLIENT_SECRET) && !html.contains(AGENT_PASSWORD));
    assert!(!html.contains("secret-path-token"));
}
