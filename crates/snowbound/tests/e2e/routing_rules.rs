//! Routing rules as the reference product has them (#19), end to end on both backends:
//! alerts over /ingest, rules with delays, time windows, discards and edits of the
//! incident, and what ServiceNow (the emulator) ended up holding.

use chrono::{Datelike, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};
use snowbound_testkit::{eventually, Backend, TestApp};
use uuid::Uuid;

use crate::sources_routing::{alert, incident_of, rule, source};

async fn history(app: &TestApp, team: Uuid) -> Vec<Value> {
    app.get(&format!("/api/v1/routing-history?team_id={team}"))
        .await
        .as_array()
        .unwrap()
        .clone()
}

fn of_incident(history: &[Value], incident: Uuid) -> Vec<&Value> {
    let id = incident.to_string();
    history
        .iter()
        .filter(|h| h["incident_id"] == id.as_str())
        .collect()
}

/// Every day of the week but today (UTC): a window that cannot hold now.
fn other_days() -> Vec<&'static str> {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let today = Utc::now().weekday().num_days_from_monday() as usize;
    days.iter()
        .enumerate()
        .filter(|(i, _)| *i != today)
        .map(|(_, d)| *d)
        .collect()
}

fn today() -> &'static str {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    days[Utc::now().weekday().num_days_from_monday() as usize]
}

async fn a_delayed_forward_sends_nothing_for_a_flapping_alert_and_one_record_for_a_steady_one(
    backend: Backend,
) {
    let app = TestApp::spawn(backend).await;
    let team = app.team("ops").await;
    // An `always` integration too: the delay holds its link as well, or the flapping
    // alert would reach ServiceNow through it.
    app.integration(team, "always", json!({})).await;
    let forwarded = app
        .integration(team, "always_after_forwarding", json!({}))
        .await;
    let (_, url) = source(&app, team, "webhook").await;
    let held = rule(
        &app,
        team,
        "wait out flapping",
        json!({}),
        json!({"forward_to": [forwarded], "delay_seconds": 2}),
    )
    .await;

    let flapping = incident_of(
        &alert(
            &app,
            &url,
            json!({"dedup_key": "flap", "title": "CPU high", "severity": "warning"}),
        )
        .await,
    );
    let resolved = alert(
        &app,
        &url,
        json!({"dedup_key": "flap", "status": "resolved"}),
    )
    .await;
    assert_eq!(resolved["action"], "resolved");
    let steady = incident_of(
        &alert(
            &app,
            &url,
            json!({"dedup_key": "steady", "title": "Disk full", "severity": "critical"}),
        )
        .await,
    );
    assert!(
        app.writes_for(steady).is_empty(),
        "nothing is sent before the delay"
    );
    let view = app.get(&format!("/api/v1/incidents/{steady}")).await;
    assert_eq!(view["links"].as_array().map(Vec::len), Some(2), "{view}");

    // The steady alert's records appear after the delay; by then the flapping alert's
    // delay is over as well, and it must have sent nothing.
    eventually("the steady incident reaches ServiceNow", || async {
        app.store()
            .links_of_incident(steady)
            .await
            .unwrap()
            .iter()
            .filter(|l| l.sys_id.is_some())
            .count()
            == 2
    })
    .await;
    app.wait_synced(steady).await;
    let creates = app
        .writes_for(steady)
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(creates, 2, "one record per integration");
    assert!(app.writes_for(flapping).is_empty());
    assert!(app
        .store()
        .links_of_incident(flapping)
        .await
        .unwrap()
        .is_empty());
    let view = app.get(&format!("/api/v1/incidents/{flapping}")).await;
    let not_sent = view["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "not_sent")
        .count();
    assert_eq!(not_sent, 2, "{view}");

    let history = history(&app, team).await;
    let rows = of_incident(&history, flapping);
    let kinds: Vec<&str> = rows.iter().map(|h| h["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["not_sent", "not_sent", "fired"],
        "newest first: {history:?}"
    );
    assert!(rows
        .iter()
        .all(|h| h["rule_id"] == held.to_string().as_str()));
}

async fn a_rule_outside_its_time_window_does_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team("ops").await;
    let integration = app
        .integration(team, "always_after_forwarding", json!({}))
        .await;
    let window =
        |days: Vec<&str>| json!({"days": days, "from": "00:00", "to": "00:00", "time_zone": "UTC"});
    rule(
        &app,
        team,
        "not today",
        json!({"time_window": window(other_days())}),
        json!({"forward_to": [integration], "set_severity": "critical"}),
    )
    .await;
    let today_rule = rule(
        &app,
        team,
        "today",
        json!({"time_window": window(vec![today()])}),
        json!({"set_attributes": {"window": "today"}}),
    )
    .await;

    let incident = app.incident(team, "Disk full", "minor").await;
    let view = app.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(view["severity"], "minor");
    assert_eq!(view["attributes"]["window"], "today");
    assert!(view["links"].as_array().unwrap().is_empty(), "{view}");
    let history = history(&app, team).await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!(history[0]["rule_id"], today_rule.to_string().as_str());
    assert!(app.writes_for(incident).is_empty());
}

async fn a_discarding_rule_opens_no_incident_and_says_so_in_the_history(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team("ops").await;
    app.integration(team, "always", json!({})).await;
    let (_, url) = source(&app, team, "webhook").await;
    rule(
        &app,
        team,
        "drop dev noise",
        json!({"attributes": {"env": {"not_equals": "prod"}}}),
        json!({"discard": true}),
    )
    .await;

    let dropped = alert(
        &app,
        &url,
        json!({"dedup_key": "dev-1", "title": "dev box hot", "severity": "critical",
               "attributes": {"env": "dev"}}),
    )
    .await;
    assert_eq!(dropped["action"], "discarded");
    assert!(dropped["incident_id"].is_null(), "{dropped}");
    let kept = alert(
        &app,
        &url,
        json!({"dedup_key": "prod-1", "title": "prod box hot", "severity": "critical",
               "attributes": {"env": "prod"}}),
    )
    .await;
    assert_eq!(kept["action"], "opened");
    let incidents = app.get("/api/v1/incidents").await;
    assert_eq!(incidents.as_array().unwrap().len(), 1, "{incidents}");
    let history = history(&app, team).await;
    let discarded: Vec<&Value> = history
        .iter()
        .filter(|h| h["kind"] == "discarded")
        .collect();
    assert_eq!(discarded.len(), 1, "{history:?}");
    assert!(discarded[0]["incident_id"].is_null());
    assert!(discarded[0]["detail"].as_str().unwrap().contains("dev-1"));
    let kept = incident_of(&kept);
    app.wait_synced(kept).await;
    let creates: Vec<_> = app
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(creates.len(), 1, "only the kept alert reached ServiceNow");
    assert_eq!(creates[0].body["correlation_id"], kept.to_string().as_str());
}

async fn rules_change_severity_and_attributes_top_to_bottom_and_stop_ends_them(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team("ops").await;
    let integration = app
        .integration(team, "always_after_forwarding", json!({}))
        .await;
    let (source_id, url) = source(&app, team, "webhook").await;
    rule(
        &app,
        team,
        "payments are critical",
        json!({"source_ids": [source_id], "match": "any",
               "attributes": {"svc": {"contains": "pay"}, "load": {"gte": "90"}}}),
        json!({"set_severity": "critical", "set_attributes": {"tier": "1"}, "stop": false}),
    )
    .await;
    rule(
        &app,
        team,
        "criticals to ServiceNow",
        json!({"severity": ["critical"], "attributes": {"tier": "1"}}),
        json!({"forward_to": [integration], "stop": true}),
    )
    .await;
    rule(
        &app,
        team,
        "never reached",
        json!({}),
        json!({"set_attributes": {"reached": "yes"}}),
    )
    .await;

    let opened = alert(
        &app,
        &url,
        json!({"dedup_key": "pay", "title": "Payments slow", "severity": "minor",
               "attributes": {"svc": "payments", "load": "42"}}),
    )
    .await;
    let incident = incident_of(&opened);
    let view = app.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(view["severity"], "critical", "{view}");
    assert_eq!(view["attributes"]["tier"], "1");
    assert!(
        view["attributes"]["reached"].is_null(),
        "stop ends the rules"
    );
    assert_eq!(view["source_id"], source_id.to_string().as_str());
    app.wait_synced(incident).await;
    assert_eq!(app.record(incident).unwrap()["urgency"], "1");

    // The alert repeats with its own severity: what the rule set stays.
    let again = alert(
        &app,
        &url,
        json!({"dedup_key": "pay", "title": "Payments slow", "severity": "minor",
               "attributes": {"svc": "payments", "load": "43"}}),
    )
    .await;
    assert_eq!(again["action"], "updated");
    let view = app.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(view["severity"], "critical");
    assert_eq!(view["attributes"]["tier"], "1");
    assert_eq!(view["attributes"]["load"], "43");

    // An incident a person opens came from no source: the first rule's other condition
    // (`match: any`) must carry it.
    let by_hand = app.incident(team, "Checkout down", "minor").await;
    let view = app.get(&format!("/api/v1/incidents/{by_hand}")).await;
    assert_eq!(view["severity"], "minor");
    assert_eq!(
        view["attributes"]["reached"], "yes",
        "continues past rule 2"
    );
}

async fn a_rule_fires_once_per_incident_and_a_later_match_does_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team("ops").await;
    let once = rule(
        &app,
        team,
        "databases start as warnings",
        json!({"title_contains": "db"}),
        json!({"set_severity": "warning"}),
    )
    .await;
    let incident = app.incident(team, "db-1 down", "critical").await;
    assert_eq!(
        app.get(&format!("/api/v1/incidents/{incident}")).await["severity"],
        "warning"
    );
    // A person raises it; the rule matches the changed incident again but has fired.
    let (status, answer) = app
        .try_patch(
            &format!("/api/v1/incidents/{incident}"),
            json!({"severity": "critical", "title": "db-1 still down"}),
        )
        .await
        .parts();
    assert_eq!(status, StatusCode::OK, "{answer}");
    let view = app.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(view["severity"], "critical", "{view}");
    let history = history(&app, team).await;
    let rows = of_incident(&history, incident);
    assert_eq!(rows.len(), 1, "{history:?}");
    assert_eq!(rows[0]["rule_id"], once.to_string().as_str());
    assert_eq!(rows[0]["rule_name"], "databases start as warnings");
    assert!(rows[0]["detail"]
        .as_str()
        .unwrap()
        .contains("severity critical → warning"));
}

async fn rules_reorder_in_one_request_and_bad_rules_are_refused_by_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let team = app.team("ops").await;
    let other = app.team("other").await;
    let first = rule(&app, team, "first", json!({}), json!({"stop": true})).await;
    let second = rule(&app, team, "second", json!({}), json!({"stop": true})).await;
    let theirs = rule(&app, other, "theirs", json!({}), json!({"stop": true})).await;

    let reordered = app
        .post(
            "/api/v1/routing-rules/reorder",
            json!({"team_id": team, "rule_ids": [second, first]}),
        )
        .await;
    let names: Vec<&str> = reordered
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["second", "first"]);
    let listed = app
        .get(&format!("/api/v1/routing-rules?team_id={team}"))
        .await;
    assert_eq!(listed[0]["id"], second.to_string().as_str());

    for ids in [
        json!([second]),
        json!([second, first, first]),
        json!([second, first, theirs]),
    ] {
        let refused = app
            .try_post(
                "/api/v1/routing-rules/reorder",
                json!({"team_id": team, "rule_ids": ids}),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{refused:?}"
        );
        assert_eq!(refused.field(), "rule_ids");
    }
    let listed = app
        .get(&format!("/api/v1/routing-rules?team_id={team}"))
        .await;
    assert_eq!(
        listed[0]["id"],
        second.to_string().as_str(),
        "nothing moved"
    );

    let cases = [
        (
            json!({"time_window": {"from": "08:00", "to": "18:00", "time_zone": "Mars/Base"}}),
            json!({"stop": true}),
            "when.time_window.time_zone",
        ),
        (
            json!({"time_window": {"from": "8", "to": "18:00", "time_zone": "UTC"}}),
            json!({"stop": true}),
            "when.time_window.from",
        ),
        (
            json!({"source_ids": [Uuid::now_v7()]}),
            json!({"stop": true}),
            "when.source_ids[0]",
        ),
        (json!({}), json!({"delay_seconds": 0}), "then.delay_seconds"),
        (
            json!({}),
            json!({"discard": true, "set_severity": "minor"}),
            "then.discard",
        ),
    ];
    for (when, then, field) in cases {
        let refused = app
            .try_post(
                "/api/v1/routing-rules",
                json!({"team_id": team, "name": "bad", "when": when, "then": then}),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{refused:?}"
        );
        assert_eq!(refused.field(), field, "{refused:?}");
    }
    // Values that do not even parse are named by their path too.
    for (when, then, field) in [
        (
            json!({}),
            json!({"set_severity": "sev0"}),
            "then.set_severity",
        ),
        (
            json!({"time_window": {"days": ["someday"], "from": "08:00", "to": "09:00",
                                   "time_zone": "UTC"}}),
            json!({"stop": true}),
            "when.time_window.days[0]",
        ),
        (
            json!({"attributes": {"load": {"above": "9"}}}),
            json!({"stop": true}),
            "when.attributes.load",
        ),
        (
            json!({"match": "some"}),
            json!({"stop": true}),
            "when.match",
        ),
    ] {
        let refused = app
            .try_post(
                "/api/v1/routing-rules",
                json!({"team_id": team, "name": "bad", "when": when, "then": then}),
            )
            .await;
        assert_eq!(
            refused.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{refused:?}"
        );
        assert_eq!(refused.field(), field, "{refused:?}");
    }
    // PATCH merges into the stored rule and is checked as a whole.
    let patched = app
        .try_patch(
            &format!("/api/v1/routing-rules/{first}"),
            json!({"when": {"status": ["resolved"]}, "then": {"stop": null, "set_attributes": {"done": "y"}}}),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{patched:?}");
    let body = patched.body;
    assert_eq!(body["when"]["status"], json!(["resolved"]));
    assert_eq!(body["then"]["stop"], false);
    assert_eq!(body["then"]["set_attributes"]["done"], "y");
}

async fn the_routing_history_is_scoped_to_the_callers_teams(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ours = app.team("ours").await;
    let theirs = app.team("theirs").await;
    for team in [ours, theirs] {
        rule(
            &app,
            team,
            "tag",
            json!({}),
            json!({"set_attributes": {"seen": "yes"}}),
        )
        .await;
        app.incident(team, "something", "minor").await;
    }
    let token = app.token("ours", &[ours]).await;
    let (status, seen) = app
        .call_as(
            reqwest::Method::GET,
            "/api/v1/routing-history",
            &token,
            None,
        )
        .await
        .parts();
    assert_eq!(status, StatusCode::OK);
    let seen = seen.as_array().unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["team_id"], ours.to_string().as_str());
    let (_, none) = app
        .call_as(
            reqwest::Method::GET,
            &format!("/api/v1/routing-history?team_id={theirs}"),
            &token,
            None,
        )
        .await
        .parts();
    assert_eq!(none, json!([]));
    assert_eq!(
        app.get("/api/v1/routing-history?limit=1")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

snowbound_testkit::on_both_backends!(
    a_delayed_forward_sends_nothing_for_a_flapping_alert_and_one_record_for_a_steady_one,
    a_rule_outside_its_time_window_does_nothing,
    a_discarding_rule_opens_no_incident_and_says_so_in_the_history,
    rules_change_severity_and_attributes_top_to_bottom_and_stop_ends_them,
    a_rule_fires_once_per_incident_and_a_later_match_does_nothing,
    rules_reorder_in_one_request_and_bad_rules_are_refused_by_field,
    the_routing_history_is_scoped_to_the_callers_teams,
);
