//! A source flooding past its limit is slowed, not lost: what is over the limit is
//! answered 429 with `Retry-After` before any of it is stored, everything answered 2xx
//! is an incident, and a sender that retries after the wait gets the rest in.

use reqwest::StatusCode;
use serde_json::{json, Value};
use snowbound_emulator::EmulatorConfig;
use snowbound_testkit::{eventually, on_both_backends, Backend, TestApp};

on_both_backends!(a_flood_past_the_sources_limit_gets_429_with_retry_after_and_loses_nothing);

async fn source(app: &TestApp, team: uuid::Uuid, kind: &str) -> String {
    let created = app
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": kind, "name": kind}),
        )
        .await;
    created["ingest_url"].as_str().unwrap().to_owned()
}

async fn a_flood_past_the_sources_limit_gets_429_with_retry_after_and_loses_nothing(
    backend: Backend,
) {
    // 5 alerts a second: a full bucket holds 50.
    let t = TestApp::spawn_with(backend, EmulatorConfig::default(), |c| {
        c.ingest_rate_limit = 5;
    })
    .await;
    let team = t.team("ops").await;
    let webhook = source(&t, team, "webhook").await;
    let alertmanager = source(&t, team, "alertmanager").await;
    let http = reqwest::Client::new();
    let send = |n: usize| {
        let (http, webhook) = (&http, &webhook);
        async move {
            http.post(webhook)
                .json(
                    &json!({"dedup_key": format!("flood-{n}"), "title": format!("Flood {n}"),
                              "severity": "warning"}),
                )
                .send()
                .await
                .unwrap()
        }
    };

    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for n in 0..80 {
        let answer = send(n).await;
        match answer.status() {
            StatusCode::ACCEPTED => accepted.push(n),
            StatusCode::TOO_MANY_REQUESTS => {
                let wait: u64 = answer.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=10).contains(&wait), "Retry-After {wait}");
                let body: Value = answer.json().await.unwrap();
                assert_eq!(body["error"]["code"], "rate_limited");
                refused.push(n);
            }
            other => panic!("alert {n}: unexpected {other}"),
        }
    }
    assert!(
        accepted.len() >= 50,
        "a full bucket admits 50: {accepted:?}"
    );
    assert!(
        !refused.is_empty(),
        "80 alerts at once exceed a bucket of 50"
    );

    // Another source has its own bucket; a refused Alertmanager body stores none of it.
    let burst: Vec<Value> = (0..60)
        .map(|i| {
            json!({"status": "firing", "fingerprint": format!("am-{i}"),
                        "labels": {"alertname": format!("am-{i}")}})
        })
        .collect();
    let body = json!({"version": "4", "status": "firing", "alerts": burst});
    let first = http.post(&alertmanager).json(&body).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let second = http.post(&alertmanager).json(&body).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);

    let titles = |incidents: Value| -> Vec<String> {
        incidents
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_owned())
            .collect()
    };
    let stored = titles(t.get("/api/v1/incidents?limit=1000").await);
    for n in &accepted {
        assert!(
            stored.contains(&format!("Flood {n}")),
            "accepted alert {n} is stored"
        );
    }
    for n in &refused {
        assert!(
            !stored.contains(&format!("Flood {n}")),
            "refused alert {n} is not"
        );
    }

    // A sender that retries, as Alertmanager does, gets every refused alert in.
    for n in refused {
        eventually(&format!("alert {n} accepted on a retry"), || async {
            send(n).await.status() == StatusCode::ACCEPTED
        })
        .await;
    }
    let stored = titles(t.get("/api/v1/incidents?limit=1000").await);
    let floods = stored.iter().filter(|t| t.starts_with("Flood ")).count();
    assert_eq!(floods, 80);

    let metrics = http
        .get(format!("{}/metrics", t.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"snowbound_alerts_ingested_total{source_kind="alertmanager",outcome="rate_limited"} 60"#),
        "{metrics}"
    );
}
