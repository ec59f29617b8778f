//! Every authentication type against the emulator over HTTP: the record lifecycle, the
//! token cache (single-flight, renewal, the refresh grant, one retry after a 401) and
//! the messages Test Connection gives for each refusal.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;
use snowbound_emulator::{property, ApiKey, Emulator, EmulatorConfig, OAuthClient, User};
use snowbound_servicenow::{Auth, Client, Connection, TestReport};

const CLIENT_ID: &str = "snowbound-client";
const CLIENT_SECRET: &str = "cl1ent-s3cret-Xy9";
const AGENT_PASSWORD: &str = "agent-pa55word-Qw3";
const API_KEY: &str = "ap1-k3y-Vb7-very-secret";

async fn instance() -> Emulator {
    let emu =
        Emulator::start(EmulatorConfig {
            users: vec![
                User::new("admin", "admin", &["admin"]),
                User::new("agent", AGENT_PASSWORD, &["itil"]),
                User::new("svc", "svc-password", &["itil"]).web_service_only(),
            ],
            oauth_clients: vec![
                OAuthClient::new(CLIENT_ID, CLIENT_SECRET).with_application_user("svc")
            ],
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator starts");
    emu.set_property(property::CLIENT_CREDENTIALS_ENABLED, "true");
    emu.add_api_key(ApiKey::new(API_KEY, "svc"));
    emu.set_api_key_policy(true);
    emu
}

fn password_grant(emu: &Emulator) -> Connection {
    with_auth(
        &emu.base_url(),
        Auth::OAuthPassword {
            client_id: CLIENT_ID.into(),
            client_secret: secret(CLIENT_SECRET),
            username: "agent".into(),
            password: secret(AGENT_PASSWORD),
        },
    )
}

fn client_credentials(emu: &Emulator, client_secret: &str) -> Connection {
    with_auth(
        &emu.base_url(),
        Auth::OAuthClientCredentials {
            client_id: CLIENT_ID.into(),
            client_secret: secret(client_secret),
        },
    )
}

fn api_key(emu: &Emulator) -> Connection {
    with_auth(
        &emu.base_url(),
        Auth::ApiKey {
            api_key: secret(API_KEY),
        },
    )
}

fn issued(emu: &Emulator) -> BTreeMap<String, u64> {
    emu.tokens_issued()
}

fn token_requests(emu: &Emulator) -> usize {
    emu.requests()
        .iter()
        .filter(|r| r.path == "/oauth_token.do")
        .count()
}

fn table_api_401s(emu: &Emulator) -> usize {
    emu.requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/now") && r.status == Some(401))
        .count()
}

fn check<'a>(report: &'a TestReport, name: &str) -> &'a snowbound_servicenow::Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:?}"))
}

/// Create → severity change → resolve, as the engine sends them.
async fn lifecycle(client: &Client, conn: &Connection, correlation_id: &str) -> String {
    let created = client.create(conn, &new_incident(correlation_id)).await;
    let sys_id = created.outcome.expect("created").sys_id;
    client
        .update(conn, &sys_id, &fields(&[("urgency", "1")]))
        .await
        .outcome
        .expect("severity changed");
    client
        .update(
            conn,
            &sys_id,
            &fields(&[
                ("state", "6"),
                ("close_code", "Solution provided"),
                ("close_notes", "Resolved from Snowbound"),
            ]),
        )
        .await
        .outcome
        .expect("resolved");
    sys_id
}

#[tokio::test]
async fn each_auth_type_drives_a_record_from_create_to_resolve() {
    let emu = instance().await;
    let client = client();
    for (conn, how, who) in [
        (
            connection(&emu.base_url(), "svc", "svc-password", "incident"),
            "basic",
            "svc",
        ),
        (password_grant(&emu), "bearer", "agent"),
        (client_credentials(&emu, CLIENT_SECRET), "bearer", "svc"),
        (api_key(&emu), "api_key", "svc"),
    ] {
        emu.take_requests();
        let correlation_id = format!("inc-{}", conn.auth.client_id().unwrap_or(how));
        let correlation_id = format!("{correlation_id}-{who}");
        let sys_id = lifecycle(&client, &conn, &correlation_id).await;
        let record = emu.record("incident", &sys_id).unwrap();
        assert_eq!(record["state"], "6", "{conn:?}");
        assert_eq!(record["urgency"], "1");
        let table_calls: Vec<_> = emu
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with("/api/now"))
            .collect();
        assert_eq!(table_calls.len(), 3, "{table_calls:?}");
        for call in table_calls {
            assert_eq!(call.auth.as_deref(), Some(how), "{call:?}");
            assert_eq!(call.user.as_deref(), Some(who), "{call:?}");
        }
    }
}

#[tokio::test]
async fn a_burst_of_100_calls_costs_one_token_and_a_refused_one_is_replaced_once() {
    let emu = instance().await;
    let client = client();
    let conn = password_grant(&emu);
    let burst = |label: &'static str| {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let (client, conn) = (client.clone(), conn.clone());
                tokio::spawn(async move {
                    let exchange = client
                        .create(&conn, &new_incident(&format!("{label}-{i}")))
                        .await;
                    exchange.outcome.map(|_| ()).map_err(|f| f.to_string())
                })
            })
            .collect();
        async move {
            for task in tasks {
                task.await
                    .unwrap()
                    .expect("every call of the burst succeeds");
            }
        }
    };
    burst("cold").await;
    assert_eq!(token_requests(&emu), 1, "{:?}", issued(&emu));

    // The instance forgets every token: the first 401s renew it once; all are retried.
    emu.revoke_tokens();
    emu.take_requests();
    burst("revoked").await;
    let token_calls = token_requests(&emu);
    assert!(
        (1..=2).contains(&token_calls),
        "{token_calls} token calls: {:?}",
        issued(&emu)
    );
    assert_eq!(emu.records("incident").len(), 200);
}

#[tokio::test]
async fn a_refused_token_is_renewed_and_the_call_retried_within_one_exchange() {
    let emu = instance().await;
    let client = client();
    let conn = password_grant(&emu);
    lifecycle(&client, &conn, "inc-before").await;
    emu.expire_tokens(false);
    let exchange = client.create(&conn, &new_incident("inc-after")).await;
    exchange.outcome.expect("retried with a renewed token");
    let statuses: Vec<(String, Option<u16>)> = exchange
        .calls
        .iter()
        .map(|c| (c.url.rsplit('/').next().unwrap().to_owned(), c.status))
        .collect();
    assert_eq!(
        statuses,
        [
            (
                "incident?sysparm_exclude_reference_link=true".into(),
                Some(401)
            ),
            ("oauth_token.do".into(), Some(200)),
            (
                "incident?sysparm_exclude_reference_link=true".into(),
                Some(201)
            ),
        ]
    );
    // The refresh token was still good: no second password grant.
    assert_eq!(issued(&emu).get("password"), Some(&1));
    assert_eq!(issued(&emu).get("refresh_token"), Some(&1));

    // Refresh tokens gone too: the password grant again, still one exchange.
    emu.revoke_tokens();
    let exchange = client.create(&conn, &new_incident("inc-revoked")).await;
    exchange
        .outcome
        .expect("retried after a new password grant");
    assert_eq!(issued(&emu).get("password"), Some(&2));
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_before_they_expire() {
    let emu = instance().await;
    emu.set_token_lifespans(Duration::from_secs(2), Duration::from_secs(3600));
    let client = client();
    let with_refresh = password_grant(&emu);
    let without_refresh = client_credentials(&emu, CLIENT_SECRET);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut calls = 0;
    loop {
        for conn in [&with_refresh, &without_refresh] {
            let found = client.find_by_correlation_id(conn, "nothing-here").await;
            assert_eq!(found.outcome.expect("every call succeeds"), None);
            calls += 1;
        }
        let issued = issued(&emu);
        if issued.get("refresh_token").copied().unwrap_or(0) >= 2
            && issued.get("client_credentials").copied().unwrap_or(0) >= 3
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{issued:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Renewed ahead of expiry: no call was refused for an expired token on the way,
    // and the password grant ran once, its refresh token doing the rest.
    assert_eq!(table_api_401s(&emu), 0);
    assert_eq!(issued(&emu).get("password"), Some(&1));
    assert!(calls > 4);
}

#[tokio::test]
async fn test_connection_obtains_a_token_of_its_own() {
    let emu = instance().await;
    let client = client();
    for conn in [
        password_grant(&emu),
        client_credentials(&emu, CLIENT_SECRET),
    ] {
        let (report, calls) = client.test_connection(&conn).await;
        assert!(report.ok, "{report:?}");
        let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "Instance reachable",
                "Token obtained",
                "Credentials accepted",
                "Table readable",
                "sys_choice readable"
            ]
        );
        assert!(check(&report, "Token obtained").detail.contains("1800 s"));
        assert!(calls[0].url.ends_with("/oauth_token.do"), "{calls:?}");
    }
    // Basic and API keys need no token.
    let (report, _) = client.test_connection(&api_key(&emu)).await;
    assert!(report.ok, "{report:?}");
    assert!(report.checks.iter().all(|c| c.name != "Token obtained"));
    assert!(check(&report, "Credentials accepted")
        .detail
        .contains("API key"));
}

#[tokio::test]
async fn each_refusal_says_what_to_do_in_test_connection() {
    let emu = instance().await;
    let client = client();

    let (report, _) = client
        .test_connection(&client_credentials(&emu, "not-the-secret"))
        .await;
    assert!(!report.ok);
    assert!(check(&report, "Instance reachable").ok);
    let token = check(&report, "Token obtained");
    assert!(!token.ok);
    assert!(
        token.detail.contains("client id or client secret"),
        "{token:?}"
    );
    assert!(!check(&report, "Credentials accepted").ok);

    emu.set_property(property::CLIENT_CREDENTIALS_ENABLED, "false");
    let (report, _) = client
        .test_connection(&client_credentials(&emu, CLIENT_SECRET))
        .await;
    let token = check(&report, "Token obtained");
    assert!(
        token
            .detail
            .contains("glide.oauth.inbound.client.credential.grant_type.enabled"),
        "{token:?}"
    );

    emu.set_basic_auth_restriction(true);
    let (report, _) = client.test_connection(&admin(&emu)).await;
    let credentials = check(&report, "Credentials accepted");
    assert!(!credentials.ok);
    for words in [
        "Web service access only",
        "snc_basic_auth_api_access",
        "OAuth",
    ] {
        assert!(credentials.detail.contains(words), "{credentials:?}");
    }
    // A web-service-only account still passes the restriction.
    let (report, _) = client
        .test_connection(&connection(
            &emu.base_url(),
            "svc",
            "svc-password",
            "incident",
        ))
        .await;
    assert!(report.ok, "{report:?}");

    emu.set_api_key_policy(false);
    let (report, _) = client.test_connection(&api_key(&emu)).await;
    let credentials = check(&report, "Credentials accepted");
    assert!(!credentials.ok);
    assert!(
        credentials.detail.contains("REST API Access Policy"),
        "{credentials:?}"
    );
}
