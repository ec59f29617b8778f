//! HTTP tests of the API alone: the node's router over a SQLite store, without an
//! engine, so links stay as the API left them. Booted and called through the one
//! harness, `snowbound-testkit`; what is here is this suite's own fixtures.

mod errors;
mod incidents;
mod instance_settings;
mod integrations;
mod mapping;
mod scoping;
mod servicenow;
mod sources_servicenow;

use serde_json::{json, Value};
pub use snowbound_testkit::{Answer, TestApp, ADMIN_TOKEN};
use snowbound_testkit::{Backend, Spawn};
use uuid::Uuid;

/// The API allowing local instances, as tests against the emulator on 127.0.0.1 need
/// (`SNOWBOUND_ALLOW_LOCAL_INSTANCES=true`).
pub async fn start() -> TestApp {
    api_only(true).await
}

/// The API with the production default: public https instances only.
pub async fn start_public_only() -> TestApp {
    api_only(false).await
}

async fn api_only(allow_local_instances: bool) -> TestApp {
    Spawn::new(Backend::Sqlite)
        .without_engine()
        .config(move |config| {
            config.allow_local_instances = allow_local_instances;
            config.public_url = Some("http://snowbound.test/".into());
        })
        .await
}

pub const PASSWORD: &str = "pw-never-shown-7f3a";

/// The smallest valid integration: everything else takes the seed's defaults.
pub fn integration_body(team: Uuid) -> Value {
    json!({
        "display_name": "ServiceNow",
        "root_team_id": team,
        "type": "servicenow",
        "servicenow": {
            // Nothing listens there: ServiceNow is unreachable, so no choice warnings.
            "instance_url": "http://127.0.0.1:9",
            "username": "snowbound",
            "password": PASSWORD,
            "close_code": "Solution provided",
        }
    })
}

/// An integration of `team` on an unreachable instance, in `forwarding` mode.
pub async fn integration(server: &TestApp, team: Uuid, forwarding: &str) -> Uuid {
    let mut body = integration_body(team);
    body["forwarding"] = json!(forwarding);
    let answer = server.try_post("/api/v1/integrations", body).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.id()
}

/// The integration's password as stored (decrypted).
pub async fn store_password(server: &TestApp, integration: Uuid) -> String {
    use secrecy::ExposeSecret;
    let secret = server
        .store()
        .integration_credentials(integration)
        .await
        .unwrap()
        .password
        .expect("a Basic integration has a password");
    secret.expose_secret().to_owned()
}
