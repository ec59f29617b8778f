//! `servicenow.auth` over the HTTP API against the emulator configured like a current
//! instance (Basic restricted, the client-credentials grant enabled, an API key with its
//! access policy): every type syncs a whole lifecycle, secrets stay write-only, a PATCH
//! keeps or asks again for them, and each refusal reaches Test Connection with its advice.

use reqwest::Method;
use serde_json::{json, Value};
use snowbound_emulator::{property, ApiKey, EmulatorConfig, OAuthClient, User};
use snowbound_testkit::{Backend, TestApp};
use uuid::Uuid;

const CLIENT_ID: &str = "snowbound-e2e";
const CLIENT_SECRET: &str = "e2e-cl1ent-s3cret";
const PASSWORD: &str = "e2e-svc-pa55word";
const API_KEY: &str = "e2e-ap1-k3y";
const SECRETS: [&str; 3] = [CLIENT_SECRET, PASSWORD, API_KEY];

pub fn auth_types() -> [Value; 4] {
    [
        json!({"type": "basic", "username": "svc", "password": PASSWORD}),
        json!({"type": "oauth_client_credentials", "client_id": CLIENT_ID,
               "client_secret": CLIENT_SECRET}),
        json!({"type": "oauth_password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
               "username": "svc", "password": PASSWORD}),
        json!({"type": "api_key", "api_key": API_KEY}),
    ]
}

/// The emulator as a current instance: Basic restricted to the web-service-only `svc`,
/// OAuth client credentials on, an API key with its REST API Access Policy.
pub fn instance() -> EmulatorConfig {
    let mut config = EmulatorConfig {
        users: vec![
            User::new("svc", PASSWORD, &["itil"]).web_service_only(),
            User::new("plain", PASSWORD, &["itil"]),
        ],
        oauth_clients: vec![OAuthClient::new(CLIENT_ID, CLIENT_SECRET).with_application_user("svc")],
        api_keys: vec![ApiKey::new(API_KEY, "svc")],
        api_key_policy: true,
        ..EmulatorConfig::default()
    };
    for name in [
        property::CLIENT_CREDENTIALS_ENABLED,
        property::BASIC_AUTH_RESTRICTION_ENFORCE,
    ] {
        config.properties.insert(name.into(), "true".into());
    }
    config
}

pub async fn create(t: &TestApp, team: Uuid, auth: Value) -> snowbound_testkit::Answer {
    t.try_post(
        "/api/v1/integrations",
        json!({
            "display_name": format!("SN {}", auth["type"].as_str().unwrap_or("?")),
            "root_team_id": team,
            "type": "servicenow",
            "forwarding": "always",
            "servicenow": {
                "instance_url": t.emulator.base_url(),
                "auth": auth,
                "close_code": "Solution provided",
            },
        }),
    )
    .await
}

fn assert_no_secret(text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "a secret in: {text}");
    }
}

async fn test_connection(t: &TestApp, id: Uuid) -> Value {
    t.try_post(
        &format!("/api/v1/integrations/{id}/test-connection"),
        json!({}),
    )
    .await
    .body
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {report}"))
}

async fn every_auth_type_syncs_create_severity_and_resolve(backend: Backend) {
    let t = TestApp::spawn_with(backend, instance(), |_| {}).await;
    for auth in auth_types() {
        let kind = auth["type"].as_str().unwrap().to_owned();
        let team = t.team(&format!("team-{kind}")).await;
        let answer = create(&t, team, auth.clone()).await;
        assert_eq!(answer.status, 201, "{kind}: {answer:?}");
        assert_no_secret(&answer.text);
        let sn = &answer.body["servicenow"];
        assert_eq!(sn["auth"]["type"], kind);
        let uses = |secret: &str| auth.get(secret).is_some();
        assert_eq!(answer.body["password_set"], uses("password"), "{kind}");
        assert_eq!(
            answer.body["client_secret_set"],
            uses("client_secret"),
            "{kind}"
        );
        assert_eq!(answer.body["api_key_set"], uses("api_key"), "{kind}");
        let id = answer.id();
        let listed = t.try_get(&format!("/api/v1/integrations/{id}")).await;
        assert_no_secret(&listed.text);

        let report = test_connection(&t, id).await;
        assert_eq!(report["ok"], true, "{kind}: {report}");
        if kind.starts_with("oauth") {
            assert_eq!(check(&report, "Token obtained")["ok"], true, "{report}");
        }

        let incident = t
            .incident(team, &format!("Down via {kind}"), "critical")
            .await;
        t.wait_synced(incident).await;
        assert_eq!(t.record(incident).unwrap()["urgency"], "1", "{kind}");
        t.patch(
            &format!("/api/v1/incidents/{incident}"),
            json!({"severity": "minor"}),
        )
        .await;
        t.wait_synced(incident).await;
        assert_eq!(t.record(incident).unwrap()["urgency"], "3", "{kind}");
        t.post(
            &format!("/api/v1/incidents/{incident}/resolve"),
            json!({"comment": "Fixed."}),
        )
        .await;
        t.wait_synced(incident).await;
        let record = t.record(incident).unwrap();
        assert_eq!(record["state"], "6", "{kind}: {record:?}");
        assert_eq!(record["sys_created_by"], "svc", "{kind} acts as svc");
    }
    let calls = t.try_get("/api/v1/integrations").await;
    assert_no_secret(&calls.text);
}

async fn patch_keeps_secrets_and_asks_again_for_a_new_client_or_type(backend: Backend) {
    let t = TestApp::spawn_with(backend, instance(), |_| {}).await;
    let team = t.team("ops").await;
    let id = create(&t, team, auth_types()[1].clone()).await.id();
    let path = format!("/api/v1/integrations/{id}");

    let renamed = t.try_patch(&path, json!({"display_name": "Renamed"})).await;
    assert_eq!(renamed.status, 200, "{renamed:?}");
    assert_eq!(renamed.body["client_secret_set"], true);
    assert_eq!(test_connection(&t, id).await["ok"], true);

    let other_client = t
        .try_patch(
            &path,
            json!({"servicenow": {"auth": {"client_id": "another-client"}}}),
        )
        .await;
    assert_eq!(
        (other_client.status, other_client.field()),
        (422, "servicenow.auth.client_secret"),
        "{other_client:?}"
    );
    let other_type = t
        .try_patch(&path, json!({"servicenow": {"auth": {"type": "api_key"}}}))
        .await;
    assert_eq!(
        (other_type.status, other_type.field()),
        (422, "servicenow.auth.api_key"),
        "{other_type:?}"
    );
    let missing_id = t
        .try_patch(
            &path,
            json!({"servicenow": {"auth": {"type": "oauth_password",
                                            "client_secret": CLIENT_SECRET,
                                            "username": "svc", "password": PASSWORD}}}),
        )
        .await;
    assert_eq!(
        (missing_id.status, missing_id.field()),
        (422, "servicenow.auth.client_id"),
        "{missing_id:?}"
    );

    // A new type with its secret replaces the auth; the old secret is not kept.
    let switched = t
        .try_patch(
            &path,
            json!({"servicenow": {"auth": {"type": "api_key", "api_key": API_KEY}}}),
        )
        .await;
    assert_eq!(switched.status, 200, "{switched:?}");
    assert_eq!(
        switched.body["servicenow"]["auth"],
        json!({"type": "api_key"})
    );
    assert_eq!(switched.body["api_key_set"], true);
    assert_eq!(switched.body["client_secret_set"], false);
    assert_no_secret(&switched.text);
    assert_eq!(test_connection(&t, id).await["ok"], true);

    // The top-level form still means Basic; with `auth` too, both must agree.
    let legacy = t
        .try_patch(
            &path,
            json!({"servicenow": {"username": "svc", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(legacy.status, 200, "{legacy:?}");
    assert_eq!(
        legacy.body["servicenow"]["auth"],
        json!({"type": "basic", "username": "svc"})
    );
    let disagree = t
        .try_patch(
            &path,
            json!({"servicenow": {"username": "other",
                                  "auth": {"type": "basic", "username": "svc"}}}),
        )
        .await;
    assert_eq!(
        (disagree.status, disagree.field()),
        (422, "servicenow.username"),
        "{disagree:?}"
    );
    let unknown = create(
        &t,
        team,
        json!({"type": "oauth_client_credentials", "client_id": "c", "api_key": "k"}),
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.field()),
        (422, "servicenow.auth.api_key"),
        "{unknown:?}"
    );
    let no_secret = create(
        &t,
        team,
        json!({"type": "oauth_client_credentials", "client_id": "c"}),
    )
    .await;
    assert_eq!(
        (no_secret.status, no_secret.field()),
        (422, "servicenow.auth.client_secret"),
        "{no_secret:?}"
    );
}

async fn each_refusal_shows_its_advice_in_test_connection(backend: Backend) {
    let t = TestApp::spawn_with(backend, instance(), |_| {}).await;
    let team = t.team("ops").await;
    let failing = |report: &Value| -> String {
        assert_eq!(report["ok"], false, "{report}");
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .map(|c| c["detail"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
            .join(" | ")
    };

    let wrong_secret = create(
        &t,
        team,
        json!({"type": "oauth_client_credentials", "client_id": CLIENT_ID,
               "client_secret": "not-the-secret"}),
    )
    .await
    .id();
    let report = test_connection(&t, wrong_secret).await;
    assert_eq!(check(&report, "Token obtained")["ok"], false, "{report}");
    assert!(failing(&report).contains("client secret"), "{report}");

    let basic_restricted = create(
        &t,
        team,
        json!({"type": "basic", "username": "plain", "password": PASSWORD}),
    )
    .await
    .id();
    let detail = failing(&test_connection(&t, basic_restricted).await);
    assert!(detail.contains("snc_basic_auth_api_access"), "{detail}");

    t.emulator.set_api_key_policy(false);
    let no_policy = create(&t, team, auth_types()[3].clone()).await.id();
    let detail = failing(&test_connection(&t, no_policy).await);
    assert!(detail.contains("REST API Access Policy"), "{detail}");

    t.emulator
        .set_property(property::CLIENT_CREDENTIALS_ENABLED, "false");
    let grant_off = create(&t, team, auth_types()[1].clone()).await.id();
    let detail = failing(&test_connection(&t, grant_off).await);
    assert!(
        detail.contains(property::CLIENT_CREDENTIALS_ENABLED),
        "{detail}"
    );
    let calls = t
        .call(
            Method::GET,
            &format!("/api/v1/integrations/{grant_off}/api-calls"),
            None,
        )
        .await;
    assert_no_secret(&calls.text);
}

snowbound_testkit::on_both_backends!(
    every_auth_type_syncs_create_severity_and_resolve,
    patch_keeps_secrets_and_asks_again_for_a_new_client_or_type,
);

mod sqlite_only {
    #[tokio::test]
    async fn each_refusal_shows_its_advice_in_test_connection() {
        super::each_refusal_shows_its_advice_in_test_connection(snowbound_testkit::Backend::Sqlite)
            .await
    }
}

/// `snowbound demo --auth oauth`: the demo's integration signs in with client credentials
/// and Test Connection passes against its emulator.
#[tokio::test]
async fn the_demo_switches_to_oauth_with_one_flag() {
    use std::io::BufRead;
    let mut child = std::process::Command::new(crate::SNOWBOUND)
        .args([
            "demo",
            "--auth",
            "oauth",
            "--listen",
            "127.0.0.1:0",
            "--emulator-listen",
            "127.0.0.1:0",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // The reader keeps draining the demo's output to the end: a closed pipe would fail
    // the demo's next log line, not the test.
    let (found, announced) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut base = None;
        let mut found = Some(found);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let value = line
                .split_whitespace()
                .last()
                .unwrap_or_default()
                .to_owned();
            if line.trim_start().starts_with("Snowbound API") {
                base = Some(value.trim_end_matches("/api/v1").to_owned());
            } else if line.trim_start().starts_with("Integration") {
                if let (Some(found), Some(base)) = (found.take(), base.clone()) {
                    let _ = found.send((base, value));
                }
            }
        }
    });
    let (base, id) = tokio::task::spawn_blocking(move || {
        announced
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the demo prints its API URL, then its integration")
    })
    .await
    .unwrap();
    let api = snowbound_testkit::Api::new(base);
    let integration = api
        .call_as(
            Method::GET,
            &format!("/api/v1/integrations/{id}"),
            "demo-admin-token",
            None,
        )
        .await;
    let report = api
        .call_as(
            Method::POST,
            &format!("/api/v1/integrations/{id}/test-connection"),
            "demo-admin-token",
            None,
        )
        .await;
    // SIGTERM, so the demo removes its data directory as on Ctrl-C.
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success(), "the demo stops on SIGTERM");
    assert_eq!(
        integration.body["servicenow"]["auth"]["type"], "oauth_client_credentials",
        "{integration:?}"
    );
    assert_eq!(integration.body["client_secret_set"], true);
    assert_eq!(report.body["ok"], true, "{report:?}");
    assert_eq!(check(&report.body, "Token obtained")["ok"], true);
}
