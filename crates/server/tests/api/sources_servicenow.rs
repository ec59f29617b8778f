//! `servicenow` sources through the API (issue #15): created with the defaults,
//! refused naming the field at fault, read with their business rule and poll state;
//! pokes taken or refused; an integration's `who_wins` set and read back.

use serde_json::{json, Value};
use snowbound_testkit::{on_both_backends, Backend, Spawn, TestApp};
use uuid::Uuid;

use crate::integration_body;

async fn start(backend: Backend) -> TestApp {
    Spawn::new(backend)
        .without_engine()
        .config(|config| {
            config.allow_local_instances = true;
            config.public_url = Some("http://snowbound.test/".into());
        })
        .await
}

/// A team with an integration (on an unreachable instance: sources need none).
async fn team_with_integration(server: &TestApp, name: &str) -> (Uuid, Uuid) {
    let team = server.team(name).await;
    let answer = server
        .try_post("/api/v1/integrations", integration_body(team))
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    (team, answer.id())
}

fn source_body(team: Uuid, servicenow: Value) -> Value {
    json!({"team_id": team, "type": "servicenow", "name": "desk", "servicenow": servicenow})
}

/// The ingest URL's path, for the test client (which prefixes the node's address).
fn ingest_path(source: &Value) -> String {
    let url = source["ingest_url"].as_str().expect("ingest_url");
    let at = url.find("/ingest/").expect("an ingest path");
    url[at..].to_owned()
}

const SYS_ID: &str = "0123456789abcdef0123456789abcdef";

on_both_backends!(
    a_servicenow_source_takes_the_defaults_and_answers_its_business_rule_and_poll,
    bad_servicenow_settings_are_refused_naming_the_field,
    pokes_are_taken_or_refused_as_the_source_says,
    who_wins_round_trips_and_a_bad_value_is_named,
);

async fn a_servicenow_source_takes_the_defaults_and_answers_its_business_rule_and_poll(
    backend: Backend,
) {
    let server = start(backend).await;
    let (team, integration) = team_with_integration(&server, "ops").await;
    let answer = server
        .try_post(
            "/api/v1/sources",
            source_body(team, json!({"integration_id": integration})),
        )
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let created = answer.body;
    assert_eq!(created["type"], "servicenow");
    assert_eq!(
        created["servicenow"],
        json!({
            "integration_id": integration,
            "delivery": "push_and_poll",
            "poll_interval_s": 60,
            "open_filter": null,
            "transitions": {"resolve": true, "reopen": true, "acknowledge": true, "severity": false},
        })
    );
    let ingest_url = created["ingest_url"].as_str().unwrap();
    assert!(
        ingest_url.starts_with("http://snowbound.test/ingest/"),
        "{ingest_url}"
    );
    let rule = &created["business_rule"];
    assert_eq!(rule["table"], "incident");
    assert_eq!(rule["when"], "after");
    assert_eq!(rule["insert"], true);
    assert_eq!(rule["update"], true);
    let script = rule["script"].as_str().unwrap();
    assert!(script.contains("new sn_ws.RESTMessageV2()"), "{script}");
    assert!(script.contains("r.executeAsync();"), "{script}");
    assert!(
        script.contains(&format!("r.setEndpoint(\"{ingest_url}\");")),
        "{script}"
    );

    // Read back, alone and in the list: the same settings, rule and a poll schedule.
    let id = created["id"].as_str().unwrap();
    let read = server.get(&format!("/api/v1/sources/{id}")).await;
    assert_eq!(read["servicenow"], created["servicenow"]);
    assert_eq!(read["business_rule"], created["business_rule"]);
    let poll = &read["poll"];
    assert!(poll["next_poll_at"].is_string(), "{read}");
    for never_yet in [
        "last_poll_at",
        "last_records",
        "last_error",
        "last_success_at",
        "watermark",
    ] {
        assert!(
            poll.get(never_yet).is_some_and(Value::is_null),
            "{never_yet} before any poll: {read}"
        );
    }
    let list = server.get("/api/v1/sources").await;
    let listed = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .expect("the source is listed");
    assert_eq!(listed["poll"], read["poll"]);
    assert_eq!(listed["business_rule"], read["business_rule"]);

    // A push-only source does not poll: `poll` is null, and present.
    let push = server
        .post(
            "/api/v1/sources",
            source_body(
                team,
                json!({"integration_id": integration, "delivery": "push",
                       "open_filter": "active=true", "poll_interval_s": 30,
                       "transitions": {"severity": true, "reopen": false}}),
            ),
        )
        .await;
    let read = server
        .get(&format!("/api/v1/sources/{}", push["id"].as_str().unwrap()))
        .await;
    assert_eq!(read["poll"], Value::Null, "{read}");
    assert!(read.get("poll").is_some(), "{read}");
    assert_eq!(read["servicenow"]["delivery"], "push");
    assert_eq!(read["servicenow"]["poll_interval_s"], 30);
    assert_eq!(read["servicenow"]["open_filter"], "active=true");
    assert_eq!(
        read["servicenow"]["transitions"],
        json!({"resolve": true, "reopen": false, "acknowledge": true, "severity": true})
    );
    assert!(
        read["business_rule"]["condition"]
            .as_str()
            .unwrap()
            .contains("GlideFilter.checkRecord(current, \"active=true\")"),
        "{read}"
    );

    // Other kinds carry none of it.
    let webhook = server
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "webhook", "name": "hooks"}),
        )
        .await;
    for key in ["servicenow", "business_rule", "poll"] {
        assert!(webhook.get(key).is_none(), "{key}: {webhook}");
    }
}

async fn bad_servicenow_settings_are_refused_naming_the_field(backend: Backend) {
    let server = start(backend).await;
    let (team, integration) = team_with_integration(&server, "ops").await;
    let (_, theirs) = team_with_integration(&server, "db").await;
    let cases = [
        (
            json!({"integration_id": integration, "poll_interval_s": 4}),
            "servicenow.poll_interval_s",
        ),
        (
            json!({"integration_id": integration, "open_filter": "active=true^^priority=1"}),
            "servicenow.open_filter",
        ),
        (
            json!({"integration_id": integration, "open_filter": "active=true^ORDERBYnumber"}),
            "servicenow.open_filter",
        ),
        (
            json!({"integration_id": integration, "delivery": "pull"}),
            "servicenow.delivery",
        ),
        (
            json!({"integration_id": theirs}),
            "servicenow.integration_id",
        ),
        (
            json!({"integration_id": Uuid::now_v7()}),
            "servicenow.integration_id",
        ),
    ];
    for (settings, field) in cases {
        let answer = server
            .try_post("/api/v1/sources", source_body(team, settings.clone()))
            .await;
        assert_eq!(answer.status, 422, "{settings}: {answer:?}");
        assert_eq!(answer.field(), field, "{settings}: {answer:?}");
    }
    let at_least = server
        .try_post(
            "/api/v1/sources",
            source_body(
                team,
                json!({"integration_id": integration, "poll_interval_s": 5}),
            ),
        )
        .await;
    assert_eq!(at_least.status, 201, "5 seconds is allowed: {at_least:?}");
    let none = server
        .try_post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "servicenow", "name": "desk"}),
        )
        .await;
    assert_eq!(none.status, 422, "{none:?}");
    assert_eq!(none.field(), "servicenow");
    let sources = server.get("/api/v1/sources").await;
    assert_eq!(
        sources.as_array().unwrap().len(),
        1,
        "only the valid one: {sources}"
    );
}

async fn pokes_are_taken_or_refused_as_the_source_says(backend: Backend) {
    let server = start(backend).await;
    let (team, integration) = team_with_integration(&server, "ops").await;
    let source = server
        .post(
            "/api/v1/sources",
            source_body(team, json!({"integration_id": integration})),
        )
        .await;
    let path = ingest_path(&source);
    let source_id = snowbound_testkit::id(&source);

    let answer = server
        .try_post(&path, json!({"sys_id": SYS_ID, "table": "incident"}))
        .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert_eq!(server.store().count_pokes(source_id).await.unwrap(), 1);

    for (poke, field) in [
        (json!({"sys_id": SYS_ID, "table": "problem"}), "table"),
        (
            json!({"sys_id": "INC0010001", "table": "incident"}),
            "sys_id",
        ),
    ] {
        let answer = server.try_post(&path, poke.clone()).await;
        assert_eq!(answer.status, 422, "{poke}: {answer:?}");
        assert_eq!(answer.field(), field, "{poke}: {answer:?}");
    }
    assert_eq!(
        server.store().count_pokes(source_id).await.unwrap(),
        1,
        "refused pokes are not queued"
    );

    let poll_only = server
        .post(
            "/api/v1/sources",
            source_body(
                team,
                json!({"integration_id": integration, "delivery": "poll"}),
            ),
        )
        .await;
    let answer = server
        .try_post(
            &ingest_path(&poll_only),
            json!({"sys_id": SYS_ID, "table": "incident"}),
        )
        .await;
    assert_eq!(answer.status, 409, "{answer:?}");
    assert_eq!(answer.code(), "pokes_refused", "{answer:?}");

    let answer = server
        .try_post(
            "/ingest/not-the-secret-at-all",
            json!({"sys_id": SYS_ID, "table": "incident"}),
        )
        .await;
    assert_eq!(answer.status, 404, "{answer:?}");
}

async fn who_wins_round_trips_and_a_bad_value_is_named(backend: Backend) {
    let server = start(backend).await;
    let (_, integration) = team_with_integration(&server, "ops").await;
    let path = format!("/api/v1/integrations/{integration}");
    let read = server.get(&path).await;
    assert_eq!(
        read["servicenow"]["who_wins"],
        json!({"state": "latest", "severity": "latest"}),
        "the default: {read}"
    );
    let patched = server
        .patch(
            &path,
            json!({"servicenow": {"who_wins": {"state": "snowbound", "severity": "servicenow"}}}),
        )
        .await;
    assert_eq!(
        patched["servicenow"]["who_wins"],
        json!({"state": "snowbound", "severity": "servicenow"})
    );
    let read = server.get(&path).await;
    assert_eq!(
        read["servicenow"]["who_wins"],
        patched["servicenow"]["who_wins"]
    );

    let answer = server
        .try_patch(
            &path,
            json!({"servicenow": {"who_wins": {"state": "whoever"}}}),
        )
        .await;
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.field(), "servicenow.who_wins.state", "{answer:?}");
    let read = server.get(&path).await;
    assert_eq!(
        read["servicenow"]["who_wins"],
        json!({"state": "snowbound", "severity": "servicenow"}),
        "a refused PATCH changes nothing"
    );
}
