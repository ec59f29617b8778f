//! Shared set-up for tests that talk HTTP to the emulator.

use std::time::Duration;

use secrecy::SecretString;
use snowbound_emulator::{Emulator, EmulatorConfig, User};
use snowbound_servicenow::{Auth, Client, ClientConfig, Connection, FieldMap};
use url::Url;

/// A password distinctive enough that finding it anywhere is a leak, not a coincidence.
pub const SECRET: &str = "Zq7-very-secret-P4ss";

pub async fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts")
}

/// `users` in the emulator's `NAME:PASSWORD:ROLE,ROLE` form.
pub async fn emulator_with_users(users: &[&str]) -> Emulator {
    let users: Vec<User> = users
        .iter()
        .map(|u| u.parse().expect("user spec"))
        .collect();
    Emulator::start(EmulatorConfig {
        users,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

pub fn connection(base_url: &str, username: &str, password: &str, table: &str) -> Connection {
    let mut conn = with_auth(
        base_url,
        Auth::Basic {
            username: username.to_owned(),
            password: secret(password),
        },
    );
    conn.table = table.to_owned();
    conn
}

pub fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

/// A connection to the incident table with `auth`.
pub fn with_auth(base_url: &str, auth: Auth) -> Connection {
    Connection {
        instance_url: Url::parse(base_url).expect("base url"),
        auth,
        table: "incident".to_owned(),
        integration: None,
    }
}

pub fn admin(emu: &Emulator) -> Connection {
    connection(&emu.base_url(), "admin", "admin", "incident")
}

/// The emulator listens on 127.0.0.1 over plain http, which only a client allowing local
/// instances calls (as `SNOWBOUND_ALLOW_LOCAL_INSTANCES=true` does).
pub fn client() -> Client {
    Client::new(ClientConfig {
        allow_local_instances: true,
        ..ClientConfig::default()
    })
    .expect("client builds")
}

/// The production default: public https instances only.
pub fn public_only_client() -> Client {
    Client::new(ClientConfig::default()).expect("client builds")
}

/// For tests that make the server hang: short enough to keep the suite quick.
pub fn impatient_client() -> Client {
    Client::new(ClientConfig {
        request_timeout: Duration::from_millis(500),
        allow_local_instances: true,
        ..ClientConfig::default()
    })
    .expect("client builds")
}

pub fn fields(pairs: &[(&str, &str)]) -> FieldMap {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// What Snowbound sends on a create (DESIGN.md "Fields written on create").
pub fn new_incident(correlation_id: &str) -> FieldMap {
    fields(&[
        ("short_description", "Disk full on db-1"),
        ("description", "Alert from Snowbound"),
        ("correlation_id", correlation_id),
        ("correlation_display", "Snowbound"),
        ("state", "1"),
        ("urgency", "2"),
        ("impact", "2"),
    ])
}

/// An address where nothing listens: bound, then released.
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}
