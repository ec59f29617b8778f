//! After a full lifecycle the integration's secrets are nowhere they should not be: not
//! in any API answer, not in the API call log, not in the server's log at trace level,
//! and not in the database files in clear. That holds for the password, for an OAuth
//! client secret, an API key, and the access and refresh tokens the instance issued.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use snowbound_emulator::{property, ApiKey, Emulator, EmulatorConfig, OAuthClient, User};
use snowbound_testkit::node::Node;
use snowbound_testkit::{eventually, ADMIN_TOKEN};

const PASSWORD: &str = "Zq7-kX9-unmistakable-secret";
const NEW_PASSWORD: &str = "Rt4-second-unmistakable-secret";

struct Client {
    base: String,
    http: reqwest::Client,
    /// Every answer body, to scan at the end.
    answers: std::sync::Mutex<Vec<String>>,
}

impl Client {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        self.answers.lock().unwrap().push(text.clone());
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }
}

fn forbidden_texts() -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        PASSWORD.to_owned(),
        NEW_PASSWORD.to_owned(),
        b64.encode(format!("snowbound:{PASSWORD}")),
        b64.encode(format!("snowbound:{NEW_PASSWORD}")),
    ]
}

fn assert_absent(place: &str, haystack: &[u8]) {
    assert_none_of(&forbidden_texts(), place, haystack)
}

fn assert_none_of(needles: &[String], place: &str, haystack: &[u8]) {
    for needle in needles {
        let found = haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes());
        assert!(!found, "a secret ({}…) appears in {place}", &needle[..6]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_appears_in_no_answer_log_or_database_file() {
    let emulator = Emulator::start(EmulatorConfig {
        users: vec![format!("snowbound:{PASSWORD}:itil,personalize_choices")
            .parse()
            .unwrap()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let mut node = Node::start_with(
        crate::SNOWBOUND,
        &data,
        &[("RUST_LOG", "trace")],
        Some(&log),
    )
    .await;
    let api = Client {
        base: node.base.clone(),
        http: reqwest::Client::new(),
        answers: Default::default(),
    };

    let team = api.post("/api/v1/teams", json!({"name": "core"})).await;
    let integration = api
        .post(
            "/api/v1/integrations",
            json!({"display_name": "SN", "root_team_id": team["id"], "type": "servicenow",
                   "forwarding": "always_after_forwarding",
                   "servicenow": {"instance_url": emulator.base_url(), "username": "snowbound",
                                  "password": PASSWORD, "close_code": "Solution provided"}}),
        )
        .await;
    let int_id = integration["id"].as_str().unwrap().to_owned();
    assert_eq!(integration["password_set"], true);
    let report = api
        .post(
            &format!("/api/v1/integrations/{int_id}/test-connection"),
            json!({}),
        )
        .await;
    assert_eq!(report["ok"], true, "{report}");
    api.get(&format!(
        "/api/v1/integrations/{int_id}/choices?field=state"
    ))
    .await;

    let incident = api
        .post(
            "/api/v1/incidents",
            json!({"team_id": team["id"], "title": "Secret scan", "severity": "critical"}),
        )
        .await;
    let id = incident["id"].as_str().unwrap().to_owned();
    api.post(
        &format!("/api/v1/incidents/{id}/forward"),
        json!({"integration_id": int_id}),
    )
    .await;
    api.call(
        reqwest::Method::PATCH,
        &format!("/api/v1/incidents/{id}"),
        Some(json!({"severity": "minor"})),
    )
    .await;
    api.post(
        &format!("/api/v1/incidents/{id}/resolve"),
        json!({"comment": "done"}),
    )
    .await;
    eventually("the resolve reached ServiceNow", || async {
        emulator
            .records_by_correlation_id("incident", &id)
            .first()
            .is_some_and(|r| r["state"] == "6")
    })
    .await;

    // A password change, then a wrong password: the failing state and its log lines
    // must not carry it either.
    api.call(
        reqwest::Method::PATCH,
        &format!("/api/v1/integrations/{int_id}"),
        Some(json!({"servicenow": {"password": NEW_PASSWORD}})),
    )
    .await;
    api.post(&format!("/api/v1/incidents/{id}/reopen"), json!({}))
        .await;
    eventually(
        "the wrong password marks the integration failing",
        || async {
            api.get(&format!("/api/v1/integrations/{int_id}")).await["health"]["failing"]
                .is_string()
        },
    )
    .await;

    for path in [
        format!("/api/v1/integrations/{int_id}"),
        "/api/v1/integrations".to_owned(),
        format!("/api/v1/integrations/{int_id}/api-calls"),
        format!("/api/v1/incidents/{id}"),
        format!("/api/v1/incidents/{id}/api-calls"),
    ] {
        api.get(&path).await;
    }
    api.post(
        &format!("/api/v1/integrations/{int_id}/preview"),
        json!({"incident_id": id}),
    )
    .await;
    let calls = api
        .get(&format!("/api/v1/integrations/{int_id}/api-calls"))
        .await;
    assert!(
        calls.as_array().unwrap().len() >= 4,
        "the API call log has the calls: {calls}"
    );

    node.signal("-TERM");
    node.wait_exit(Duration::from_secs(15));

    for (i, answer) in api.answers.lock().unwrap().iter().enumerate() {
        assert_absent(&format!("API answer #{i}"), answer.as_bytes());
    }
    let log_text = std::fs::read(&log).unwrap();
    assert!(log_text.len() > 1000, "the trace log was written");
    assert_absent("the server log", &log_text);
    let mut files = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_absent(&path.display().to_string(), &std::fs::read(&path).unwrap());
        files += 1;
    }
    assert!(files >= 2, "the database and key file were scanned");
}

const CLIENT_SECRET: &str = "Cs8-oauth-unmistakable-client-secret";
const OAUTH_PASSWORD: &str = "Pw3-oauth-unmistakable-user-password";
const API_KEY: &str = "Ak5-unmistakable-api-key-value";

/// OAuth (password grant, so a refresh token too, and client credentials) and an API key
/// through a lifecycle each, Test Connection and a token renewal: no secret and no token
/// the instance issued shows up in an answer, the log or a database file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_secrets_api_keys_and_tokens_appear_in_no_answer_log_or_database_file() {
    let emulator = Emulator::start(EmulatorConfig {
        users: vec![
            User::new("svc", OAUTH_PASSWORD, &["itil", "personalize_choices"]).web_service_only(),
        ],
        oauth_clients: vec![
            OAuthClient::new("scan-client", CLIENT_SECRET).with_application_user("svc")
        ],
        api_keys: vec![ApiKey::new(API_KEY, "svc")],
        api_key_policy: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    emulator.set_property(property::CLIENT_CREDENTIALS_ENABLED, "true");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let mut node = Node::start_with(
        crate::SNOWBOUND,
        &data,
        &[("RUST_LOG", "trace")],
        Some(&log),
    )
    .await;
    let api = Client {
        base: node.base.clone(),
        http: reqwest::Client::new(),
        answers: Default::default(),
    };
    let mut tokens = std::collections::BTreeSet::new();
    let auths = [
        json!({"type": "oauth_password", "client_id": "scan-client",
               "client_secret": CLIENT_SECRET, "username": "svc", "password": OAUTH_PASSWORD}),
        json!({"type": "oauth_client_credentials", "client_id": "scan-client",
               "client_secret": CLIENT_SECRET}),
        json!({"type": "api_key", "api_key": API_KEY}),
    ];
    let mut integrations = Vec::new();
    for (i, auth) in auths.into_iter().enumerate() {
        let team = api
            .post("/api/v1/teams", json!({"name": format!("team-{i}")}))
            .await;
        let integration = api
            .post(
                "/api/v1/integrations",
                json!({"display_name": format!("SN {i}"), "root_team_id": team["id"],
                       "type": "servicenow", "forwarding": "always",
                       "servicenow": {"instance_url": emulator.base_url(), "auth": auth,
                                      "close_code": "Solution provided"}}),
            )
            .await;
        let int_id = integration["id"].as_str().unwrap().to_owned();
        let report = api
            .post(
                &format!("/api/v1/integrations/{int_id}/test-connection"),
                json!({}),
            )
            .await;
        assert_eq!(report["ok"], true, "{report}");
        tokens.extend(emulator.token_values());
        let incident = api
            .post(
                "/api/v1/incidents",
                json!({"team_id": team["id"], "title": "Secret scan", "severity": "critical"}),
            )
            .await;
        let id = incident["id"].as_str().unwrap().to_owned();
        // The tokens expire mid-lifecycle: the renewal (refresh grant for the password
        // grant) must not leak either.
        emulator.expire_tokens(false);
        api.post(
            &format!("/api/v1/incidents/{id}/resolve"),
            json!({"comment": "done"}),
        )
        .await;
        eventually("the resolve reached ServiceNow", || async {
            emulator
                .records_by_correlation_id("incident", &id)
                .first()
                .is_some_and(|r| r["state"] == "6")
        })
        .await;
        tokens.extend(emulator.token_values());
        api.call(
            reqwest::Method::PATCH,
            &format!("/api/v1/integrations/{int_id}"),
            Some(json!({"display_name": format!("SN {i} renamed")})),
        )
        .await;
        for path in [
            format!("/api/v1/integrations/{int_id}"),
            format!("/api/v1/integrations/{int_id}/api-calls"),
            format!("/api/v1/incidents/{id}"),
            format!("/api/v1/incidents/{id}/api-calls"),
        ] {
            api.get(&path).await;
        }
        integrations.push(int_id);
    }
    api.get("/api/v1/integrations").await;
    assert!(
        emulator.tokens_issued().contains_key("refresh_token"),
        "the refresh grant was used: {:?}",
        emulator.tokens_issued()
    );
    assert!(tokens.len() >= 3, "tokens were issued: {}", tokens.len());

    node.signal("-TERM");
    node.wait_exit(Duration::from_secs(15));
    let mut needles: Vec<String> =
        vec![CLIENT_SECRET.into(), OAUTH_PASSWORD.into(), API_KEY.into()];
    needles.extend(tokens);
    for (i, answer) in api.answers.lock().unwrap().iter().enumerate() {
        assert_none_of(&needles, &format!("API answer #{i}"), answer.as_bytes());
    }
    let log_text = std::fs::read(&log).unwrap();
    assert!(log_text.len() > 1000, "the trace log was written");
    assert_none_of(&needles, "the server log", &log_text);
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        assert_none_of(
            &needles,
            &path.display().to_string(),
            &std::fs::read(&path).unwrap(),
        );
    }
}

/// The ingest URL's secret is the source's only credential: at trace level the request
/// spans and every line below them show `/ingest/<redacted>`, never the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_secrets_appear_in_no_log_line_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let mut node = Node::start_with(
        crate::SNOWBOUND,
        &dir.path().join("data"),
        &[("RUST_LOG", "trace")],
        Some(&log),
    )
    .await;
    let api = Client {
        base: node.base.clone(),
        http: reqwest::Client::new(),
        answers: Default::default(),
    };
    let team = api.post("/api/v1/teams", json!({"name": "ops"})).await;
    let mut secrets = Vec::new();
    for kind in ["webhook", "alertmanager"] {
        let source = api
            .post(
                "/api/v1/sources",
                json!({"team_id": team["id"], "type": kind, "name": kind}),
            )
            .await;
        let url = source["ingest_url"].as_str().unwrap().to_owned();
        let secret = url.rsplit('/').next().unwrap().to_owned();
        assert!(secret.len() > 20, "{url}");
        let bodies = match kind {
            "webhook" => vec![
                json!({"dedup_key": "k", "title": "t", "severity": "minor"}),
                json!({"dedup_key": "k", "title": "t", "severity": "nonsense"}),
            ],
            _ => vec![
                json!({"alerts": [{"status": "firing", "labels": {"alertname": "A"}}]}),
                json!({"alerts": [{"status": "pending"}]}),
            ],
        };
        for body in bodies {
            let answer = api.http.post(&url).json(&body).send().await.unwrap();
            assert!(answer.status().as_u16() < 500, "{}", answer.status());
        }
        // With a query and a trailing slash, and a rotated (unknown) secret.
        let _ = api.http.post(format!("{url}?x=1")).body("{").send().await;
        let _ = api.http.post(format!("{url}/")).send().await;
        let _ = api.http.get(&url).send().await;
        secrets.push(secret);
    }
    let unknown = "sbi_0123456789abcdef0123456789abcdef-unknown";
    let _ = api
        .http
        .post(format!("{}/ingest/{unknown}", node.base))
        .body("{}")
        .send()
        .await;
    secrets.push(unknown.to_owned());

    node.signal("-TERM");
    node.wait_exit(Duration::from_secs(15));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("/ingest/<redacted>"),
        "the ingest requests were traced"
    );
    for secret in &secrets {
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(secret.as_str()))
            .collect();
        assert!(
            lines.is_empty(),
            "an ingest secret appears in {} log lines, e.g. {}",
            lines.len(),
            lines[0]
        );
    }
}
