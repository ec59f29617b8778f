//! Without `allow_local_instances` the client never connects to this machine or a private
//! network, whether the URL names the address or a name resolves to it at connect time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::{client, connection, new_incident, public_only_client, SECRET};
use snowbound_servicenow::Failure;
use tokio::net::TcpListener;

/// A listener on 127.0.0.1 that counts the connections it gets (a database, a cache, a
/// metadata service next to Snowbound).
async fn local_service() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (port, connections)
}

fn refused_by_policy(failure: &Failure) -> bool {
    matches!(failure, Failure::Rejected { status: 0, message, .. }
        if message.contains("SNOWBOUND_ALLOW_LOCAL_INSTANCES"))
}

#[tokio::test]
async fn loopback_addresses_are_never_called_without_the_flag() {
    let (port, connections) = local_service().await;
    for base in [
        format!("http://127.0.0.1:{port}"),
        format!("https://127.0.0.1:{port}"),
        format!("https://[::ffff:127.0.0.1]:{port}"),
    ] {
        let conn = connection(&base, "bot", SECRET, "incident");
        let exchange = public_only_client()
            .create(&conn, &new_incident("inc-local"))
            .await;
        let failure = exchange.outcome.unwrap_err();
        assert!(refused_by_policy(&failure), "{base}: {failure:?}");
        assert!(exchange.calls.is_empty(), "{base}");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_connect() {
    let (port, connections) = local_service().await;
    // `localhost` stands for any name whose DNS answer is a local address.
    let conn = connection(
        &format!("https://localhost:{port}"),
        "bot",
        SECRET,
        "incident",
    );
    let exchange = public_only_client()
        .create(&conn, &new_incident("inc-dns"))
        .await;
    let failure = exchange.outcome.unwrap_err();
    assert!(refused_by_policy(&failure), "{failure:?}");
    // Refused, not retried: nothing was sent and nothing changes until the settings do.
    assert!(!failure.is_ambiguous());

    let (report, calls) = public_only_client().test_connection(&conn).await;
    assert!(!report.ok);
    assert!(
        report.checks[0]
            .detail
            .contains("SNOWBOUND_ALLOW_LOCAL_INSTANCES"),
        "{report:#?}"
    );
    assert!(calls.iter().all(|c| c.status.is_none()));
    assert_eq!(connections.load(Ordering::SeqCst), 0);

    // With the flag the same address is called (the emulator and demo setting).
    let exchange = client().create(&conn, &new_incident("inc-dns")).await;
    assert!(exchange.outcome.is_err());
    assert!(connections.load(Ordering::SeqCst) >= 1);
}
