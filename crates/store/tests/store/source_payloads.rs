//! Grafana and JSON-mapping sources (issue #19): their settings and sealed secret survive
//! the store, and a json source's kept payloads are a ring of the newest
//! `PAYLOADS_KEPT`, each cut to `PAYLOAD_MAX_BYTES` — on SQLite and on PostgreSQL.

use chrono::{Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use snowbound_core::ingest::grafana::GrafanaSettings;
use snowbound_core::source::SourceKind;
use snowbound_store::{SecretBox, PAYLOADS_KEPT, PAYLOAD_MAX_BYTES};

use crate::common::{source, stored_source, team_and_integration, TestDb};

on_both_backends!(
    the_ring_keeps_the_newest_payloads_only,
    long_payloads_are_cut_and_odd_bytes_kept_as_text,
    grafana_settings_and_secret_round_trip,
    a_json_mapping_round_trips,
);

async fn the_ring_keeps_the_newest_payloads_only(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let mine = stored_source(&*store, &team, SourceKind::Json).await;
    let other = stored_source(&*store, &team, SourceKind::Json).await;
    let start = Utc::now();
    for n in 0..PAYLOADS_KEPT + 5 {
        let at = start + Duration::milliseconds(n as i64);
        let body = format!(r#"{{"n":{n}}}"#);
        store
            .keep_source_payload(mine.id, at, body.as_bytes())
            .await
            .unwrap();
    }
    store
        .keep_source_payload(other.id, start, b"{\"other\":true}")
        .await
        .unwrap();
    let kept = store.source_payloads(mine.id).await.unwrap();
    assert_eq!(kept.len(), PAYLOADS_KEPT);
    let newest = PAYLOADS_KEPT + 4;
    assert_eq!(kept[0].body, format!(r#"{{"n":{newest}}}"#));
    assert_eq!(kept[PAYLOADS_KEPT - 1].body, r#"{"n":5}"#);
    assert!(kept
        .windows(2)
        .all(|w| w[0].received_at >= w[1].received_at));
    assert_eq!(store.source_payloads(other.id).await.unwrap().len(), 1);

    store.delete_source(mine.id).await.unwrap();
    assert!(store.source_payloads(mine.id).await.unwrap().is_empty());
}

async fn long_payloads_are_cut_and_odd_bytes_kept_as_text(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let json_source = stored_source(&*store, &team, SourceKind::Json).await;
    // Multi-byte characters across the cut: the cut lands on a character boundary.
    let long = format!("\"{}\"", "é".repeat(PAYLOAD_MAX_BYTES));
    store
        .keep_source_payload(json_source.id, Utc::now(), long.as_bytes())
        .await
        .unwrap();
    store
        .keep_source_payload(
            json_source.id,
            Utc::now() + Duration::seconds(1),
            b"a\0b\xff",
        )
        .await
        .unwrap();
    let kept = store.source_payloads(json_source.id).await.unwrap();
    assert_eq!(kept[0].body, "a\u{FFFD}b\u{FFFD}");
    assert!(!kept[0].truncated);
    assert!(kept[1].truncated);
    assert!(kept[1].body.len() <= PAYLOAD_MAX_BYTES);
    assert!(kept[1].body.len() > PAYLOAD_MAX_BYTES - 4);
    assert!(long.starts_with(&kept[1].body));
}

async fn grafana_settings_and_secret_round_trip(db: TestDb) {
    let key = SecretBox::random();
    let store = db.open(key).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let mut grafana = source(&team, SourceKind::Grafana, "grafana");
    grafana.grafana = Some(GrafanaSettings {
        hmac_header: Some("X-Sig".into()),
        timestamp_header: Some("X-Ts".into()),
        hmac_secret_set: false,
    });
    store
        .create_source(&grafana, &SecretString::from("ingest-secret"))
        .await
        .unwrap();
    let read = store.get_source(grafana.id).await.unwrap();
    assert_eq!(read.grafana, grafana.grafana);
    assert!(store
        .source_hmac_secret(grafana.id)
        .await
        .unwrap()
        .is_none());

    let shared = SecretString::from("grafana-shared-secret");
    store
        .set_source_hmac_secret(grafana.id, Some(&shared))
        .await
        .unwrap();
    let read = store.get_source(grafana.id).await.unwrap();
    assert!(read.grafana.unwrap().hmac_secret_set);
    let opened = store.source_hmac_secret(grafana.id).await.unwrap().unwrap();
    assert_eq!(opened.expose_secret(), "grafana-shared-secret");
    let stored = db
        .raw_texts("SELECT hmac_secret_sealed || grafana FROM sources")
        .await
        .concat();
    assert!(
        !stored.contains("grafana-shared-secret"),
        "the secret is sealed at rest"
    );

    store
        .set_source_hmac_secret(grafana.id, None)
        .await
        .unwrap();
    assert!(store
        .source_hmac_secret(grafana.id)
        .await
        .unwrap()
        .is_none());
    assert!(
        !store
            .get_source(grafana.id)
            .await
            .unwrap()
            .grafana
            .unwrap()
            .hmac_secret_set
    );
}

async fn a_json_mapping_round_trips(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let mut mapped = source(&team, SourceKind::Json, "datadog");
    store
        .create_source(&mapped, &SecretString::from("dd"))
        .await
        .unwrap();
    assert_eq!(store.get_source(mapped.id).await.unwrap().json, None);
    mapped.json = Some(
        serde_json::from_value(json!({
            "dedup_key": "$.id", "title": "$.title",
            "status": {"path": "$.state", "map": {"ok": "resolved"}, "default": "open"},
            "severity": {"path": "$.p", "map": {"P1": "critical"}, "default": "minor"},
            "attributes": {"host": "$.host"}
        }))
        .unwrap(),
    );
    store.update_source(&mapped).await.unwrap();
    let listed = store.list_sources(Some(&[team.id])).await.unwrap();
    assert_eq!(listed[0].json, mapped.json);
}
