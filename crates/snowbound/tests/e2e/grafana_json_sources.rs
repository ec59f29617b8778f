//! Grafana Alerting and JSON-mapping sources (issue #19) end to end: recorded Grafana
//! notifications open and resolve incidents (and ServiceNow records), a shared secret
//! refuses unsigned or wrongly signed requests, and Datadog- and Zabbix-style bodies
//! become incidents through mappings built on the payloads the source kept.

use chrono::Utc;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use snowbound_testkit::{id, Answer, Backend, Spawn, TestApp};
use uuid::Uuid;

async fn source(app: &TestApp, team: Uuid, kind: &str, extra: Value) -> Value {
    let mut body = json!({"team_id": team, "type": kind, "name": format!("{kind} source")});
    snowbound_testkit::merge(&mut body, extra);
    app.post("/api/v1/sources", body).await
}

fn url_of(source: &Value) -> String {
    source["ingest_url"].as_str().unwrap().to_owned()
}

fn incident_id(answer: &Value) -> Uuid {
    answer["incident_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no incident in {answer}"))
}

/// A Grafana notification as its webhook contact point sends it (Grafana 11).
fn grafana_body(alerts: Vec<Value>) -> Value {
    let firing = alerts.iter().filter(|a| a["status"] == "firing").count();
    json!({
        "receiver": "snowbound", "status": if firing > 0 { "firing" } else { "resolved" },
        "orgId": 1, "alerts": alerts,
        "groupLabels": {"alertname": "HighLatency"}, "commonLabels": {"alertname": "HighLatency"},
        "commonAnnotations": {}, "externalURL": "https://grafana.example/", "version": "1",
        "groupKey": "{}/{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0,
        "title": format!("[FIRING:{firing}] HighLatency"), "state": if firing > 0 { "alerting" } else { "ok" },
        "message": "**Firing**\n\nValue: A=812"
    })
}

fn grafana_alert(status: &str, fingerprint: &str, service: &str, severity: &str) -> Value {
    json!({
        "status": status,
        "labels": {"alertname": "HighLatency", "service": service, "severity": severity,
                   "grafana_folder": "Checkout"},
        "annotations": {"summary": format!("p99 latency high on {service}"),
                        "description": "p99 above 800 ms for 5 minutes",
                        "runbook_url": "https://runbooks.example/latency"},
        "startsAt": "2026-12-03T08:00:00Z",
        "endsAt": if status == "resolved" { "2026-12-03T08:20:00Z" } else { "0001-01-01T00:00:00Z" },
        "generatorURL": "https://grafana.example/alerting/grafana/fe1/view?orgId=1",
        "fingerprint": fingerprint,
        "silenceURL": "https://grafana.example/alerting/silence/new?alertmanager=grafana",
        "dashboardURL": "https://grafana.example/d/checkout?orgId=1",
        "panelURL": "https://grafana.example/d/checkout?orgId=1&viewPanel=2",
        "values": {"A": 812.5, "C": 1},
        "valueString": "[ var='A' labels={service=checkout} value=812.5 ]"
    })
}

async fn accepted(app: &TestApp, url: &str, body: Value) -> Value {
    let (status, answer) = app.send_alert(url, body).await.parts();
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    answer
}

#[tokio::test]
async fn grafana_notifications_open_and_resolve_one_incident_per_fingerprint() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let team = app.team("ops").await;
    app.integration(team, "always", json!({})).await;
    let created = source(&app, team, "grafana", json!({})).await;
    assert_eq!(created["grafana"]["hmac_secret"]["set"], false);
    assert_eq!(
        created["grafana"]["hmac_header"],
        "X-Grafana-Alerting-Signature"
    );
    let url = url_of(&created);

    let both = grafana_body(vec![
        grafana_alert("firing", "a1f0c3d2e4b5a697", "checkout", "critical"),
        grafana_alert("firing", "b2e1d4c3f5a6b708", "payments", "warning"),
    ]);
    let answer = accepted(&app, &url, both.clone()).await;
    let alerts = answer["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    assert!(alerts.iter().all(|a| a["action"] == "opened"), "{answer}");
    let checkout = incident_id(&alerts[0]);
    let payments = incident_id(&alerts[1]);

    let view = app.get(&format!("/api/v1/incidents/{checkout}")).await;
    assert_eq!(view["title"], "p99 latency high on checkout");
    assert_eq!(view["description"], "p99 above 800 ms for 5 minutes");
    assert_eq!(view["severity"], "critical");
    assert_eq!(view["attributes"]["service"], "checkout");
    assert_eq!(view["attributes"]["values.A"], "812.5");
    assert_eq!(view["attributes"]["grafana.org_id"], "1");
    assert_eq!(
        view["attributes"]["grafana.panel_url"],
        "https://grafana.example/d/checkout?orgId=1&viewPanel=2"
    );
    let payments_view = app.get(&format!("/api/v1/incidents/{payments}")).await;
    assert_eq!(payments_view["severity"], "warning");
    app.wait_synced(checkout).await;
    assert_eq!(app.record(checkout).unwrap()["urgency"], "1");

    // Grafana repeats a notification while it fires: nothing changes.
    let again = accepted(&app, &url, both).await;
    assert!(again["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["action"] == "unchanged"));

    let resolved = grafana_body(vec![
        grafana_alert("resolved", "a1f0c3d2e4b5a697", "checkout", "critical"),
        grafana_alert("firing", "b2e1d4c3f5a6b708", "payments", "warning"),
    ]);
    let answer = accepted(&app, &url, resolved).await;
    assert_eq!(answer["alerts"][0]["action"], "resolved");
    assert_eq!(answer["alerts"][1]["action"], "unchanged");
    assert_eq!(
        app.get(&format!("/api/v1/incidents/{checkout}")).await["status"],
        "resolved"
    );
    assert_eq!(
        app.get(&format!("/api/v1/incidents/{payments}")).await["status"],
        "open"
    );
    app.wait_synced(checkout).await;
    assert_eq!(app.record(checkout).unwrap()["state"], "6");
}

fn sign(secret: &str, message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

async fn post_signed(app: &TestApp, url: &str, body: &[u8], headers: &[(&str, String)]) -> Answer {
    let mut request = app
        .http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    app.send(request).await
}

#[tokio::test]
async fn a_grafana_secret_refuses_wrong_missing_and_stale_signatures() {
    let app = Spawn::new(Backend::Sqlite).without_engine().await;
    let team = app.team("ops").await;
    let secret = "grafana-webhook-s3cret";
    let created = source(
        &app,
        team,
        "grafana",
        json!({"grafana": {"hmac_secret": secret}}),
    )
    .await;
    let source_id = id(&created);
    assert_eq!(created["grafana"]["hmac_secret"]["set"], true);
    let shown = app.get(&format!("/api/v1/sources/{source_id}")).await;
    assert!(!shown.to_string().contains(secret), "{shown}");
    assert!(!app
        .get("/api/v1/sources")
        .await
        .to_string()
        .contains(secret));
    let url = url_of(&created);
    let body = grafana_body(vec![grafana_alert("firing", "c3", "search", "warning")]).to_string();
    let body = body.as_bytes();
    let header = "X-Grafana-Alerting-Signature";

    let missing = post_signed(&app, &url, body, &[]).await;
    assert_eq!(
        missing.status_code(),
        StatusCode::UNAUTHORIZED,
        "{}",
        missing.text
    );
    assert_eq!(missing.code(), "bad_signature");
    let wrong = post_signed(&app, &url, body, &[(header, sign("other", body))]).await;
    assert_eq!(wrong.status_code(), StatusCode::UNAUTHORIZED);
    let garbage = post_signed(&app, &url, body, &[(header, "not-hex".into())]).await;
    assert_eq!(garbage.status_code(), StatusCode::UNAUTHORIZED);
    assert!(app
        .get("/api/v1/incidents")
        .await
        .as_array()
        .unwrap()
        .is_empty());
    let right = post_signed(&app, &url, body, &[(header, sign(secret, body))]).await;
    assert_eq!(right.status_code(), StatusCode::ACCEPTED, "{}", right.text);
    assert_eq!(right.body["alerts"][0]["action"], "opened");

    // With a timestamp header, Grafana signs `timestamp:body`.
    let patched = app
        .patch(
            &format!("/api/v1/sources/{source_id}"),
            json!({"grafana": {"hmac_header": "X-Sig", "timestamp_header": "X-Grafana-Alerting-Timestamp"}}),
        )
        .await;
    assert_eq!(
        patched["grafana"]["hmac_secret"]["set"], true,
        "the secret is kept"
    );
    assert_eq!(patched["grafana"]["hmac_header"], "X-Sig");
    let now = Utc::now().timestamp().to_string();
    let stamped = |ts: &str| sign(secret, &[ts.as_bytes(), b":", body].concat());
    let ts_header = "X-Grafana-Alerting-Timestamp";
    let body_only = post_signed(
        &app,
        &url,
        body,
        &[("X-Sig", sign(secret, body)), (ts_header, now.clone())],
    )
    .await;
    assert_eq!(body_only.status_code(), StatusCode::UNAUTHORIZED);
    let no_ts = post_signed(&app, &url, body, &[("X-Sig", stamped(&now))]).await;
    assert_eq!(no_ts.status_code(), StatusCode::UNAUTHORIZED);
    let old = (Utc::now().timestamp() - 3600).to_string();
    let stale = post_signed(
        &app,
        &url,
        body,
        &[("X-Sig", stamped(&old)), (ts_header, old.clone())],
    )
    .await;
    assert_eq!(stale.status_code(), StatusCode::UNAUTHORIZED);
    let good = post_signed(
        &app,
        &url,
        body,
        &[("X-Sig", stamped(&now)), (ts_header, now.clone())],
    )
    .await;
    assert_eq!(good.status_code(), StatusCode::ACCEPTED, "{}", good.text);
    assert_eq!(good.body["alerts"][0]["action"], "unchanged");

    let bad_header = app
        .try_patch(
            &format!("/api/v1/sources/{source_id}"),
            json!({"grafana": {"hmac_header": "X Sig"}}),
        )
        .await;
    assert_eq!(bad_header.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad_header.field(), "grafana.hmac_header");

    // An empty secret removes it (the headers stay): unsigned requests pass again.
    let cleared = app
        .patch(
            &format!("/api/v1/sources/{source_id}"),
            json!({"grafana": {"hmac_secret": ""}}),
        )
        .await;
    assert_eq!(cleared["grafana"]["hmac_secret"]["set"], false);
    assert_eq!(cleared["grafana"]["hmac_header"], "X-Sig");
    let unsigned = post_signed(&app, &url, body, &[]).await;
    assert_eq!(
        unsigned.status_code(),
        StatusCode::ACCEPTED,
        "{}",
        unsigned.text
    );
}

/// Datadog's webhook with the payload template its docs suggest.
fn datadog(transition: &str, priority: &str) -> Value {
    json!({
        "id": "7104388436483520000", "aggregate": "agg-3f9b2c",
        "title": format!("[{transition}] [{priority}] CPU load high on web-1"),
        "body": "avg(last_5m):avg:system.load.1{host:web-1} > 4",
        "alert_transition": transition, "alert_priority": priority,
        "hostname": "web-1", "org": {"id": "1234", "name": "Shop"},
        "tags": "env:prod,role:web",
        "url": "https://app.datadoghq.com/monitors/123"
    })
}

/// Zabbix's webhook media type with its usual parameters.
fn zabbix(value: u8, severity: &str) -> Value {
    json!({
        "event": {"id": "48121", "value": value, "name": "High CPU utilization on db-2",
                  "severity": severity, "tags": [{"tag": "scope", "value": "performance"}]},
        "host": {"name": "db-2", "ip": "10.0.0.12"},
        "trigger": {"id": "23061", "description": "CPU utilization over 90% for 5m"}
    })
}

fn payloads(app_answer: &Value) -> &Vec<Value> {
    app_answer.as_array().unwrap()
}

#[tokio::test]
async fn datadog_and_zabbix_bodies_become_incidents_through_mappings_built_on_kept_payloads() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let team = app.team("ops").await;
    app.integration(team, "always", json!({})).await;

    // Datadog: posted before any mapping exists, refused and kept.
    let dd = source(&app, team, "json", json!({})).await;
    assert_eq!(dd["json"], Value::Null);
    let (dd_id, dd_url) = (id(&dd), url_of(&dd));
    let refused = app.send_alert(&dd_url, datadog("Triggered", "P1")).await;
    assert_eq!(refused.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.field(), "json");
    let kept = app.get(&format!("/api/v1/sources/{dd_id}/payloads")).await;
    assert_eq!(payloads(&kept).len(), 1);
    let first = &kept[0];
    assert_eq!(
        serde_json::from_str::<Value>(first["body"].as_str().unwrap()).unwrap(),
        datadog("Triggered", "P1")
    );
    assert_eq!(first["preview"]["accepted"], false);
    assert_eq!(first["preview"]["missing"].as_array().unwrap().len(), 4);

    // The admin builds the mapping on the kept payload, a field at a time.
    let preview_path = format!("/api/v1/sources/{dd_id}/mapping-preview");
    let partial = app
        .post(
            &preview_path,
            json!({"mapping": {"dedup_key": "$.aggregate", "title": "$.title"}, "payload_index": 0}),
        )
        .await;
    assert_eq!(partial["accepted"], false);
    assert_eq!(partial["incident"]["dedup_key"], "agg-3f9b2c");
    assert_eq!(
        partial["incident"]["title"],
        "[Triggered] [P1] CPU load high on web-1"
    );
    assert_eq!(partial["missing"], json!(["json.status", "json.severity"]));
    let typo = app
        .post(
            &preview_path,
            json!({"mapping": {"dedup_key": "$.aggregate", "title": "$.titel",
                   "status": {"default": "open"}, "severity": {"default": "minor"}}}),
        )
        .await;
    assert_eq!(typo["errors"][0]["field"], "json.title");
    assert_eq!(typo["errors"][0]["path"], "$.titel");
    let mapping = json!({
        "dedup_key": "$.aggregate", "title": "$.title", "description": "$.body",
        "status": {"path": "$.alert_transition",
                   "map": {"Triggered": "open", "Re-Triggered": "open", "Recovered": "resolved"},
                   "default": "open"},
        "severity": {"path": "$.alert_priority",
                     "map": {"P1": "critical", "P2": "critical", "P3": "warning"}, "default": "minor"},
        "attributes": {"host": "$.hostname", "tags": "$.tags", "org": "$.org.name"}
    });
    let full = app
        .post(
            &preview_path,
            json!({"mapping": mapping, "payload_index": 0}),
        )
        .await;
    assert_eq!(full["accepted"], true, "{full}");
    assert_eq!(full["incident"]["severity"], "critical");
    assert_eq!(full["incident"]["status"], "open");
    assert_eq!(full["incident"]["attributes"]["org"], "Shop");
    let given = app
        .post(
            &preview_path,
            json!({"mapping": mapping, "payload": datadog("Recovered", "P1")}),
        )
        .await;
    assert_eq!(given["incident"]["status"], "resolved");
    let out_of_range = app
        .try_post(
            &preview_path,
            json!({"mapping": mapping, "payload_index": 5}),
        )
        .await;
    assert_eq!(out_of_range.field(), "payload_index");

    // Saving checks the paths and that the mapping is whole.
    let mut bad = mapping.clone();
    bad["status"]["path"] = json!("$.alert_transition[");
    let refused = app
        .try_patch(&format!("/api/v1/sources/{dd_id}"), json!({"json": bad}))
        .await;
    assert_eq!(refused.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.field(), "json.status.path");
    assert!(
        refused.text.contains("not a valid JSONPath"),
        "{}",
        refused.text
    );
    let incomplete = app
        .try_patch(
            &format!("/api/v1/sources/{dd_id}"),
            json!({"json": {"dedup_key": "$.aggregate"}}),
        )
        .await;
    assert_eq!(incomplete.field(), "json.title");
    let saved = app
        .patch(
            &format!("/api/v1/sources/{dd_id}"),
            json!({"json": mapping}),
        )
        .await;
    assert_eq!(saved["json"], mapping);

    let opened = accepted(&app, &dd_url, datadog("Triggered", "P1")).await;
    assert_eq!(opened["action"], "opened");
    let incident = incident_id(&opened);
    let view = app.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(view["title"], "[Triggered] [P1] CPU load high on web-1");
    assert_eq!(view["severity"], "critical");
    assert_eq!(view["attributes"]["host"], "web-1");
    assert_eq!(view["attributes"]["tags"], "env:prod,role:web");
    app.wait_synced(incident).await;
    assert_eq!(app.record(incident).unwrap()["urgency"], "1");

    // A body the mapping cannot read names the path, and is kept too.
    let unreadable = app
        .send_alert(
            &dd_url,
            json!({"aggregate": "agg-x", "alert_transition": "Triggered"}),
        )
        .await;
    assert_eq!(unreadable.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unreadable.field(), "json.title");
    assert!(unreadable.text.contains("$.title"), "{}", unreadable.text);
    let kept = app.get(&format!("/api/v1/sources/{dd_id}/payloads")).await;
    assert_eq!(payloads(&kept).len(), 3);
    assert_eq!(kept[0]["preview"]["errors"][0]["field"], "json.title");
    assert_eq!(kept[1]["preview"]["accepted"], true);

    let resolved = accepted(&app, &dd_url, datadog("Recovered", "P1")).await;
    assert_eq!(resolved["action"], "resolved");
    app.wait_synced(incident).await;
    assert_eq!(app.record(incident).unwrap()["state"], "6");

    // Zabbix: numbers for status, nested objects, a severity map with a fallback.
    let zb = source(&app, team, "json", json!({})).await;
    let (zb_id, zb_url) = (id(&zb), url_of(&zb));
    assert_eq!(
        app.send_alert(&zb_url, zabbix(1, "High"))
            .await
            .status_code(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let mapping = json!({
        "dedup_key": "$.event.id", "title": "$.event.name", "description": "$.trigger.description",
        "status": {"path": "$.event.value", "map": {"1": "open", "0": "resolved"}},
        "severity": {"path": "$.event.severity",
                     "map": {"Disaster": "critical", "High": "critical", "Average": "warning"},
                     "default": "minor"},
        "attributes": {"host": "$.host.name", "scope": "$.event.tags[?@.tag == 'scope'].value"}
    });
    let preview = app
        .post(
            &format!("/api/v1/sources/{zb_id}/mapping-preview"),
            json!({"mapping": mapping}),
        )
        .await;
    assert_eq!(preview["accepted"], true, "{preview}");
    assert_eq!(preview["incident"]["attributes"]["scope"], "performance");
    app.patch(
        &format!("/api/v1/sources/{zb_id}"),
        json!({"json": mapping}),
    )
    .await;
    let opened = accepted(&app, &zb_url, zabbix(1, "Average")).await;
    let zabbix_incident = incident_id(&opened);
    let view = app
        .get(&format!("/api/v1/incidents/{zabbix_incident}"))
        .await;
    assert_eq!(view["title"], "High CPU utilization on db-2");
    assert_eq!(view["description"], "CPU utilization over 90% for 5m");
    assert_eq!(view["severity"], "warning");
    assert_eq!(view["attributes"]["host"], "db-2");
    let resolved = accepted(&app, &zb_url, zabbix(0, "Average")).await;
    assert_eq!(resolved["action"], "resolved");
    assert_eq!(
        app.get(&format!("/api/v1/incidents/{zabbix_incident}"))
            .await["status"],
        "resolved"
    );
}

#[tokio::test]
async fn settings_of_one_kind_are_refused_on_another_by_name() {
    let app = Spawn::new(Backend::Sqlite).without_engine().await;
    let team = app.team("ops").await;
    let refuse = |body: Value| async {
        let mut full = json!({"team_id": team, "name": "x"});
        snowbound_testkit::merge(&mut full, body);
        app.try_post("/api/v1/sources", full).await
    };
    let answer = refuse(json!({"type": "webhook", "json": {}})).await;
    assert_eq!(answer.field(), "json");
    let answer = refuse(json!({"type": "json", "grafana": {}})).await;
    assert_eq!(answer.field(), "grafana");
    let answer = refuse(
        json!({"type": "json", "json": {"dedup_key": "$.id", "title": "$.t",
        "status": {"path": "nope", "default": "open"}, "severity": {"default": "minor"}}}),
    )
    .await;
    assert_eq!(answer.field(), "json.status.path");
    let answer = refuse(json!({"type": "json", "json": {"status": {"map": {"x": "maybe"}}}})).await;
    assert_eq!(answer.status_code(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer.field().starts_with("json.status.map"),
        "{}",
        answer.text
    );
    let webhook = source(&app, team, "webhook", json!({})).await;
    let not_json = app
        .try_get(&format!("/api/v1/sources/{}/payloads", id(&webhook)))
        .await;
    assert_eq!(not_json.field(), "type");
}

mod ui {
    //! The same through the web UI, JavaScript off: a json source created from the
    //! team's sources page, its kept payload listed, the mapping previewed as typed and
    //! saved; a grafana source showing its signature settings but never its secret.

    use super::*;
    use snowbound_testkit::ui::{with_admin, Ui, ADMIN_EMAIL, ADMIN_PASSWORD};

    async fn admin_ui() -> (TestApp, Ui) {
        let t = TestApp::spawn_with(Backend::Sqlite, Default::default(), with_admin).await;
        let mut ui = Ui::new(&t.base);
        ui.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        (t, ui)
    }

    #[tokio::test]
    async fn a_json_mapping_is_built_on_a_kept_payload_previewed_and_saved_from_its_page() {
        let (t, mut ui) = admin_ui().await;
        let team = t.team("ops").await;
        let sources = format!("/teams/{team}/sources");
        let created = ui
            .submit(&sources, &sources, &[("name", "datadog"), ("type", "json")])
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
        let page_path = created
            .location
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        let source_id: Uuid = page_path.rsplit('/').next().unwrap().parse().unwrap();
        let source = t.get(&format!("/api/v1/sources/{source_id}")).await;
        let refused = t
            .send_alert(&url_of(&source), datadog("Triggered", "P1"))
            .await;
        assert_eq!(refused.status_code(), StatusCode::UNPROCESSABLE_ENTITY);

        let page = ui.get(&page_path).await;
        assert!(page.html.contains("id=\"payload-0\""), "{}", page.html);
        assert!(page.html.contains("agg-3f9b2c"));
        assert!(
            page.html
                .contains("refused: the mapping lacks json.dedup_key"),
            "{}",
            page.html
        );

        let action = format!("{page_path}/mapping");
        let partial = ui
            .submit(
                &page_path,
                &action,
                &[
                    ("json.dedup_key", "$.aggregate"),
                    ("json.title", "$.title"),
                    ("payload_index", "0"),
                    ("action", "preview"),
                ],
            )
            .await;
        assert_eq!(partial.status, StatusCode::OK);
        assert!(
            partial.html.contains("Payload #0 would become:"),
            "{}",
            partial.html
        );
        assert!(partial.html.contains("Still missing"));
        assert!(
            partial.html.contains("value=\"$.aggregate\""),
            "typed values are kept"
        );

        let fields = [
            ("json.dedup_key", "$.aggregate"),
            ("json.title", "$.title"),
            ("json.status.path", "$.alert_transition"),
            ("json.status.map", "Triggered=open\nRecovered=resolved"),
            ("json.status.default", "open"),
            ("json.severity.path", "$.alert_priority"),
            ("json.severity.map", "P1=critical\nP3=warning"),
            ("json.severity.default", "minor"),
            ("json.attributes", "host=$.hostname"),
        ];
        let mut preview = fields.to_vec();
        preview.push(("action", "preview"));
        let full = ui.submit(&page_path, &action, &preview).await;
        assert!(
            full.html.contains("opens or updates a critical incident"),
            "{}",
            full.html
        );

        let mut bad = fields.to_vec();
        bad[2] = ("json.status.path", "$.alert_transition[");
        bad.push(("action", "save"));
        let refused = ui.submit(&page_path, &action, &bad).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            refused.html.contains("not a valid JSONPath"),
            "{}",
            refused.html
        );

        let mut save = fields.to_vec();
        save.push(("action", "save"));
        let saved = ui.submit(&page_path, &action, &save).await;
        assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
        let stored = t.get(&format!("/api/v1/sources/{source_id}")).await;
        assert_eq!(stored["json"]["severity"]["map"]["P1"], "critical");
        assert_eq!(stored["json"]["attributes"]["host"], "$.hostname");
        let opened = accepted(&t, &url_of(&stored), datadog("Triggered", "P1")).await;
        assert_eq!(opened["action"], "opened");
        let page = ui.get(&page_path).await;
        assert!(
            page.html.contains("value=\"$.alert_priority\""),
            "the saved mapping fills the form"
        );
    }

    #[tokio::test]
    async fn a_grafana_source_page_shows_its_signature_settings_not_its_secret() {
        let (t, mut ui) = admin_ui().await;
        let team = t.team("ops").await;
        let sources = format!("/teams/{team}/sources");
        let refused = ui
            .submit(
                &sources,
                &sources,
                &[
                    ("name", "grafana"),
                    ("type", "grafana"),
                    ("grafana.hmac_header", "X Sig"),
                ],
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            refused.html.contains("is not an HTTP header name"),
            "{}",
            refused.html
        );
        let created = ui
            .submit(
                &sources,
                &sources,
                &[
                    ("name", "grafana"),
                    ("type", "grafana"),
                    ("grafana.hmac_secret", "ui-secret-value"),
                    ("grafana.timestamp_header", "X-Grafana-Alerting-Timestamp"),
                ],
            )
            .await;
        assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
        let listed = t.get("/api/v1/sources").await;
        let source = &listed[0];
        assert_eq!(source["grafana"]["hmac_secret"]["set"], true);
        let page = ui.get(&format!("{sources}/{}", id(source))).await;
        assert!(
            page.html.contains("id=\"grafana-secret\">set"),
            "{}",
            page.html
        );
        assert!(page.html.contains("X-Grafana-Alerting-Signature"));
        assert!(page.html.contains("X-Grafana-Alerting-Timestamp"));
        assert!(page.html.contains(source["ingest_url"].as_str().unwrap()));
        assert!(!page.html.contains("ui-secret-value"));
        assert!(!ui.get(&sources).await.html.contains("ui-secret-value"));
    }
}
