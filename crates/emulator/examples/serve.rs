//! A stand-in for `snowbound emulator` with the same flags, for trying the emulator
//! without the main binary:
//! `cargo run -p snowbound-emulator --example serve -- --listen 127.0.0.1:8089 --user bot:pw:itil:2/s`

use snowbound_emulator::{serve_with_shutdown, EmulatorConfig, User};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut config = EmulatorConfig {
        users: Vec::new(),
        ..EmulatorConfig::default()
    };
    let mut listen = "127.0.0.1:8089".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().expect("flag needs a value");
        match arg.as_str() {
            "--listen" => listen = value(),
            "--user" => config
                .users
                .push(value().parse::<User>().unwrap_or_else(|e| panic!("{e}"))),
            "--extra-table" => config.extra_tables.push(value()),
            "--no-data-policy" => config.data_policy = false,
            "--oauth-client" => config
                .oauth_clients
                .push(value().parse().unwrap_or_else(|e| panic!("{e}"))),
            "--api-key" => config
                .api_keys
                .push(value().parse().unwrap_or_else(|e| panic!("{e}"))),
            "--api-key-policy" => config.api_key_policy = true,
            "--property" => {
                let v = value();
                let (name, val) = v.split_once('=').expect("NAME=VALUE");
                config.properties.insert(name.into(), val.into());
            }
            "--access-token-lifespan-s" => {
                config.access_token_lifespan =
                    std::time::Duration::from_secs(value().parse().expect("seconds"))
            }
            "--latency-ms" => {
                config.latency = std::time::Duration::from_millis(value().parse().expect("ms"))
            }
            other => panic!("unknown flag {other}"),
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    eprintln!("ServiceNow emulator on http://{}", listener.local_addr()?);
    serve_with_shutdown(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
