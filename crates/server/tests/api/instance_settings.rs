//! Where an integration's credentials may go, and what its settings may hold: issue #12
//! (a team token redirecting the stored password, credentials in the URL, local
//! instances, editing after an admin shared it, overlong values).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::Method;
use serde_json::{json, Value};
use snowbound_emulator::{Emulator, EmulatorConfig};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::{integration, integration_body, start, start_public_only, TestApp, PASSWORD};

/// A host an attacker controls: counts connections and keeps every byte it receives.
struct Listener {
    url: String,
    connections: Arc<AtomicUsize>,
    received: Arc<std::sync::Mutex<Vec<u8>>>,
}

async fn attacker() -> Listener {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (count, keep) = (Arc::clone(&connections), Arc::clone(&received));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let keep = Arc::clone(&keep);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    keep.lock().unwrap().extend_from_slice(&buffer[..n]);
                }
            });
        }
    });
    Listener {
        url,
        connections,
        received,
    }
}

/// Team `name` with an integration on the emulator (as admin:admin) and a team token.
async fn team_with_integration(
    server: &TestApp,
    emu: &Emulator,
    name: &str,
) -> (Uuid, Uuid, String) {
    let team = server.team(name).await;
    let mut body = integration_body(team);
    body["servicenow"]["instance_url"] = json!(emu.base_url());
    body["servicenow"]["username"] = json!("admin");
    body["servicenow"]["password"] = json!("admin");
    let answer = server.try_post("/api/v1/integrations", body).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let token = server.token(name, &[team]).await;
    (team, answer.id(), token)
}

#[tokio::test]
async fn a_team_token_cannot_send_the_stored_password_to_another_host() {
    let server = start().await;
    let emu = Emulator::start(EmulatorConfig::default()).await.unwrap();
    let evil = attacker().await;
    let (_, integration, token) = team_with_integration(&server, &emu, "ops").await;
    let path = format!("/api/v1/integrations/{integration}");

    for patch in [
        json!({"servicenow": {"instance_url": evil.url}}),
        json!({"servicenow": {"instance_url": format!("{}/", emu.base_url())}}),
        json!({"servicenow": {"username": "someone-else"}}),
    ] {
        let answer = server
            .call_as(Method::PATCH, &path, &token, Some(patch.clone()))
            .await;
        assert_eq!(answer.status, 422, "{patch}: {answer:?}");
        assert_eq!(answer.field(), "servicenow.password", "{patch}");
    }
    let stored = server.try_get(&path).await;
    assert_eq!(stored.body["servicenow"]["instance_url"], emu.base_url());
    assert_eq!(stored.body["servicenow"]["username"], "admin");

    // Test Connection and choice lists use the stored credentials: only where they were
    // entered.
    let report = server
        .call_as(
            Method::POST,
            &format!("{path}/test-connection"),
            &token,
            None,
        )
        .await;
    assert_eq!(report.body["ok"], true, "{report:?}");
    server
        .call_as(
            Method::GET,
            &format!("{path}/choices?field=state"),
            &token,
            None,
        )
        .await;
    assert_eq!(evil.connections.load(Ordering::SeqCst), 0);

    // With a password typed for the new address the change is the user's own.
    let answer = server
        .call_as(
            Method::PATCH,
            &path,
            &token,
            Some(json!({"servicenow": {"instance_url": evil.url, "password": "typed-for-evil"}})),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let stored_password = crate::store_password(&server, integration).await;
    assert_eq!(stored_password, "typed-for-evil");
    assert!(!String::from_utf8_lossy(&evil.received.lock().unwrap()).contains("admin:admin"));
}

#[tokio::test]
async fn credentials_query_or_fragment_in_the_instance_url_are_refused() {
    let server = start().await;
    let team = server.team("ops").await;
    for url in [
        "https://admin:hunter2@acme.service-now.com",
        "https://admin@acme.service-now.com",
        "https://acme.service-now.com/?sysparm_x=1",
        "https://acme.service-now.com/#top",
    ] {
        let mut body = integration_body(team);
        body["servicenow"]["instance_url"] = json!(url);
        let answer = server.try_post("/api/v1/integrations", body).await;
        assert_eq!(answer.status, 422, "{url}: {answer:?}");
        assert_eq!(answer.field(), "servicenow.instance_url", "{url}");
        assert!(!answer.text.contains("hunter2"), "{answer:?}");
    }
    let integration = integration(&server, team, "always").await;
    let answer = server
        .try_patch(
            &format!("/api/v1/integrations/{integration}"),
            json!({"servicenow": {"instance_url": "https://u:hunter2@acme.service-now.com",
                                  "password": PASSWORD}}),
        )
        .await;
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.field(), "servicenow.instance_url");
    let listed = server.try_get("/api/v1/integrations").await;
    assert!(!listed.text.contains("hunter2"));
}

#[tokio::test]
async fn without_the_local_flag_plain_http_and_local_addresses_are_refused_at_save() {
    let server = start_public_only().await;
    let team = server.team("ops").await;
    for url in [
        "http://127.0.0.1:8089",
        "http://acme.service-now.com",
        "https://127.0.0.1:5432",
        "https://[::1]:6379",
        "https://10.0.0.5",
        "https://169.254.169.254",
        // A name is resolved when saving, too.
        "https://localhost:3306",
    ] {
        let mut body = integration_body(team);
        body["servicenow"]["instance_url"] = json!(url);
        let answer = server.try_post("/api/v1/integrations", body).await;
        assert_eq!(answer.status, 422, "{url}: {answer:?}");
        assert_eq!(answer.field(), "servicenow.instance_url", "{url}");
    }
    let mut body = integration_body(team);
    body["servicenow"]["instance_url"] = json!("https://acme.service-now.com");
    let answer = server.try_post("/api/v1/integrations", body).await;
    assert_eq!(answer.status, 201, "{answer:?}");
}

#[tokio::test]
async fn the_root_team_edits_its_integration_after_an_admin_shared_it_with_a_team_it_cannot_see() {
    let server = start().await;
    let root = server.team("root").await;
    let other = server.team("other").await;
    let stranger = server.team("stranger").await;
    let integration = integration(&server, root, "always").await;
    let path = format!("/api/v1/integrations/{integration}");
    let shared = server.try_patch(&path, json!({"team_ids": [other]})).await;
    assert_eq!(shared.status, 200, "{shared:?}");

    let token = server.token("root", &[root]).await;
    let renamed = server
        .call_as(
            Method::PATCH,
            &path,
            &token,
            Some(json!({"display_name": "Renamed"})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{renamed:?}");
    assert_eq!(renamed.body["team_ids"], json!([other]));
    assert_eq!(renamed.body["display_name"], "Renamed");

    // Adding a team the token cannot see is still refused.
    let added = server
        .call_as(
            Method::PATCH,
            &path,
            &token,
            Some(json!({"team_ids": [other, stranger]})),
        )
        .await;
    assert_eq!(added.status, 422, "{added:?}");
    assert_eq!(added.field(), "team_ids");
}

#[tokio::test]
async fn overlong_settings_are_refused_naming_the_field() {
    let server = start().await;
    let team = server.team("ops").await;
    let long = |n: usize| Value::String("x".repeat(n));
    let cases: Vec<(&str, Value)> = vec![
        ("display_name", json!({"display_name": long(201)})),
        (
            "servicenow.close_code",
            json!({"servicenow": {"close_code": long(41)}}),
        ),
        (
            "servicenow.close_notes_default",
            json!({"servicenow": {"close_notes_default": long(4001)}}),
        ),
        (
            "servicenow.state_open",
            json!({"servicenow": {"state_open": long(41)}}),
        ),
        (
            "servicenow.state_acknowledged",
            json!({"servicenow": {"state_acknowledged": long(41)}}),
        ),
        (
            "servicenow.state_resolved",
            json!({"servicenow": {"state_resolved": long(41)}}),
        ),
        (
            "servicenow.severity.primary_map.critical",
            json!({"servicenow": {"severity": {"primary_map": {"critical": long(41)}}}}),
        ),
        (
            "servicenow.severity.secondary_map.minor",
            json!({"servicenow": {"severity": {"secondary_field": "impact",
                                               "secondary_map": {"minor": long(41)}}}}),
        ),
    ];
    for (field, extra) in cases {
        let mut body = integration_body(team);
        merge(&mut body, extra.clone());
        let answer = server.try_post("/api/v1/integrations", body).await;
        assert_eq!(answer.status, 422, "{field}: {answer:?}");
        assert_eq!(answer.field(), field, "{answer:?}");
    }
    let mut fits = integration_body(team);
    merge(
        &mut fits,
        json!({"display_name": long(200), "servicenow": {"close_code": long(40)}}),
    );
    let answer = server.try_post("/api/v1/integrations", fits).await;
    assert_eq!(answer.status, 201, "{answer:?}");
}

fn merge(target: &mut Value, extra: Value) {
    match (target, extra) {
        (Value::Object(target), Value::Object(extra)) => {
            for (key, value) in extra {
                merge(target.entry(key).or_insert(Value::Null), value);
            }
        }
        (target, extra) => *target = extra,
    }
}
