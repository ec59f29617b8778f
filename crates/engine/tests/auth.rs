//! The engine syncing with each authentication type, driven a step at a time against a
//! real SQLite store and the emulator: the credentials come from the store, the token
//! from the one shared client's cache.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use secrecy::SecretString;
use snowbound_core::{
    new_id, Credentials, ForwardingMode, Incident, IncidentStatus, Integration, ServiceNowAuth,
    ServiceNowSettings, Severity, Team,
};
use snowbound_emulator::{property, ApiKey, Emulator, EmulatorConfig, OAuthClient, User};
use snowbound_engine::{Backoff, Engine, EngineConfig, EngineWaker, Worker};
use snowbound_servicenow::{Client, ClientConfig};
use snowbound_store::{ApiCallFilter, LinkState, SecretBox, SqliteStore, Store};

const CLIENT_ID: &str = "snowbound";
const CLIENT_SECRET: &str = "cl1ent-s3cret-engine";
const PASSWORD: &str = "svc-pa55word-engine";
const API_KEY: &str = "ap1-k3y-engine";

struct Bench {
    store: Arc<dyn Store>,
    emulator: Emulator,
    worker: Worker,
    team: Team,
    integration: Integration,
    _engine: Engine,
    _dir: tempfile::TempDir,
}

fn secret(s: &str) -> Option<SecretString> {
    Some(SecretString::from(s.to_owned()))
}

async fn bench(auth: ServiceNowAuth) -> Bench {
    let emulator =
        Emulator::start(EmulatorConfig {
            users: vec![User::new("svc", PASSWORD, &["itil"]).web_service_only()],
            oauth_clients: vec![
                OAuthClient::new(CLIENT_ID, CLIENT_SECRET).with_application_user("svc")
            ],
            ..EmulatorConfig::default()
        })
        .await
        .unwrap();
    emulator.set_property(property::CLIENT_CREDENTIALS_ENABLED, "true");
    emulator.add_api_key(ApiKey::new(API_KEY, "svc"));
    emulator.set_api_key_policy(true);
    emulator.set_basic_auth_restriction(true);

    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&url, SecretBox::random()).await.unwrap());
    let now = Utc::now();
    let team = Team {
        id: new_id(),
        name: "ops".into(),
        created_at: now,
    };
    store.create_team(&team).await.unwrap();
    let mut servicenow = ServiceNowSettings::with_defaults(
        emulator.base_url(),
        String::new(),
        "Solution provided".into(),
    );
    servicenow.auth = auth;
    let integration = Integration {
        id: new_id(),
        display_name: "SN".into(),
        root_team_id: team.id,
        team_ids: vec![],
        forwarding: ForwardingMode::Always,
        servicenow,
        created_at: now,
        updated_at: now,
    };
    let secrets = Credentials {
        password: secret(PASSWORD),
        client_secret: secret(CLIENT_SECRET),
        api_key: secret(API_KEY),
    };
    store
        .create_integration(&integration, &secrets)
        .await
        .unwrap();
    let config = EngineConfig {
        backoff: Backoff {
            base: Duration::from_millis(10),
            max: Duration::from_millis(20),
        },
        settle: Duration::ZERO,
        call_timeout: Duration::from_secs(2),
        lease_for: Duration::from_secs(5),
        ..EngineConfig::default()
    };
    let client = Client::new(ClientConfig {
        request_timeout: config.call_timeout,
        allow_local_instances: true,
        ..ClientConfig::default()
    })
    .unwrap();
    let engine = Engine::new(Arc::clone(&store), client, EngineWaker::new(), config);
    let worker = engine.worker();
    Bench {
        store,
        emulator,
        worker,
        team,
        integration,
        _engine: engine,
        _dir: dir,
    }
}

fn basic() -> ServiceNowAuth {
    ServiceNowAuth::Basic {
        username: "svc".into(),
    }
}

fn password_grant() -> ServiceNowAuth {
    ServiceNowAuth::OauthPassword {
        client_id: CLIENT_ID.into(),
        username: "svc".into(),
    }
}

fn client_credentials() -> ServiceNowAuth {
    ServiceNowAuth::OauthClientCredentials {
        client_id: CLIENT_ID.into(),
    }
}

impl Bench {
    async fn incident(&self, title: &str) -> Incident {
        common::linked_incident(&*self.store, self.team.id, self.integration.id, title).await
    }

    async fn change(&self, incident: &Incident, edit: impl FnOnce(&mut Incident)) {
        common::edit_incident(&*self.store, incident.id, edit).await;
    }

    /// Steps until nothing is left to lease; every link must end synced.
    async fn sync_all(&mut self) {
        loop {
            let tick = self.worker.tick().await;
            self.worker.idle().await;
            if tick.leased == 0 {
                break;
            }
        }
        let record = self
            .store
            .get_integration(self.integration.id)
            .await
            .unwrap();
        assert_eq!(record.health.failing, None);
        assert_eq!(record.health.failing_links, 0);
    }

    async fn assert_synced(&self, incident: &Incident) -> snowbound_emulator::Record {
        let link = self
            .store
            .get_link(incident.id, self.integration.id)
            .await
            .unwrap();
        assert_eq!(link.state, LinkState::Synced, "{link:?}");
        self.emulator
            .record("incident", link.sys_id.as_deref().unwrap())
            .unwrap()
    }

    fn token_requests(&self) -> usize {
        self.emulator
            .requests()
            .iter()
            .filter(|r| r.path == "/oauth_token.do")
            .count()
    }

    fn refused_calls(&self) -> usize {
        self.emulator
            .requests()
            .iter()
            .filter(|r| r.path.starts_with("/api/now") && r.status == Some(401))
            .count()
    }
}

#[tokio::test]
async fn every_auth_type_syncs_create_severity_and_resolve() {
    for (auth, how) in [
        (basic(), "basic"),
        (password_grant(), "bearer"),
        (client_credentials(), "bearer"),
        (ServiceNowAuth::ApiKey, "api_key"),
    ] {
        let mut b = bench(auth.clone()).await;
        let incident = b.incident("Disk full").await;
        b.sync_all().await;
        assert_eq!(b.assert_synced(&incident).await["urgency"], "1");
        b.change(&incident, |i| i.severity = Severity::Minor).await;
        b.sync_all().await;
        assert_eq!(b.assert_synced(&incident).await["urgency"], "3");
        b.change(&incident, |i| i.status = IncidentStatus::Resolved)
            .await;
        b.sync_all().await;
        let record = b.assert_synced(&incident).await;
        assert_eq!(record["state"], "6", "{auth:?}");
        assert_eq!(record["close_code"], "Solution provided");
        for request in b.emulator.requests() {
            if request.path.starts_with("/api/now") {
                assert_eq!(request.auth.as_deref(), Some(how), "{auth:?}");
            }
        }
        let expected_tokens = usize::from(how == "bearer");
        assert_eq!(b.token_requests(), expected_tokens, "{auth:?}");
        // Token calls are in the API call log, without secrets or tokens.
        let calls = b
            .store
            .list_api_calls(&ApiCallFilter {
                integration_id: Some(b.integration.id),
                ..ApiCallFilter::default()
            })
            .await
            .unwrap();
        let text = serde_json::to_string(&calls).unwrap();
        for secret in [CLIENT_SECRET, PASSWORD, API_KEY] {
            assert!(!text.contains(secret), "{secret} in the call log: {text}");
        }
        let token_calls = calls
            .iter()
            .filter(|c| c.url.ends_with("/oauth_token.do"))
            .count();
        assert_eq!(token_calls, expected_tokens, "{auth:?}");
    }
}

#[tokio::test]
async fn a_burst_of_100_changes_costs_one_token() {
    let mut b = bench(password_grant()).await;
    let mut incidents = Vec::new();
    for i in 0..100 {
        incidents.push(b.incident(&format!("burst {i}")).await);
    }
    b.sync_all().await;
    for incident in &incidents {
        b.change(incident, |i| i.severity = Severity::Warning).await;
    }
    b.sync_all().await;
    for incident in &incidents {
        assert_eq!(b.assert_synced(incident).await["urgency"], "2");
    }
    assert_eq!(b.token_requests(), 1);
}

#[tokio::test]
async fn syncs_continue_across_short_lived_tokens_with_the_refresh_grant() {
    let mut b = bench(password_grant()).await;
    b.emulator
        .set_token_lifespans(Duration::from_secs(1), Duration::from_secs(3600));
    let incident = b.incident("Disk full").await;
    b.sync_all().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut severity = Severity::Critical;
    // Until the token has been renewed (by refresh) at least twice, keep changing.
    while b
        .emulator
        .tokens_issued()
        .get("refresh_token")
        .copied()
        .unwrap_or(0)
        < 2
    {
        assert!(tokio::time::Instant::now() < deadline);
        severity = if severity == Severity::Critical {
            Severity::Minor
        } else {
            Severity::Critical
        };
        b.change(&incident, |i| i.severity = severity).await;
        b.sync_all().await;
        b.assert_synced(&incident).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.emulator.tokens_issued().get("password"), Some(&1));

    // An instance that forgets its tokens costs a renewal and a retry, not a failure.
    b.emulator.revoke_tokens();
    b.change(&incident, |i| i.status = IncidentStatus::Resolved)
        .await;
    b.sync_all().await;
    assert_eq!(b.assert_synced(&incident).await["state"], "6");
    assert_eq!(b.refused_calls(), 1);
}
