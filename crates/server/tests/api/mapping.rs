//! Field mappings and rules' `set_fields` through the API (issue #17): accepted,
//! answered, kept by a PATCH that does not name them, and a bad template named.

use serde_json::{json, Value};
use snowbound_testkit::{on_both_backends, Backend, Spawn, TestApp};

use crate::integration_body;

async fn start(backend: Backend) -> TestApp {
    Spawn::new(backend)
        .without_engine()
        .config(|config| config.allow_local_instances = true)
        .await
}

fn mapped() -> Value {
    json!({
        "fields": [
            {"field": "cmdb_ci", "value": "{{ attributes.instance }}", "when": "create"},
            {"field": "assignment_group", "value": "{{ team }} L2", "when": "always",
             "display": true},
        ],
        "updates": {"severity": false},
        "state_closed": "7",
        "on_closed": "reopen",
        "work_notes_field": "comments",
    })
}

async fn mappings_are_answered_and_kept_by_a_patch(backend: Backend) {
    let server = start(backend).await;
    let team = server.team("ops").await;
    let mut body = integration_body(team);
    for (key, value) in mapped().as_object().unwrap() {
        body["servicenow"][key] = value.clone();
    }
    let created = server.try_post("/api/v1/integrations", body).await;
    assert_eq!(created.status, 201, "{created:?}");
    let sn = &created.body["servicenow"];
    assert_eq!(sn["fields"][1]["display"], true);
    assert_eq!(sn["fields"][0]["value"], "{{ attributes.instance }}");
    assert_eq!(sn["updates"]["severity"], false);
    assert_eq!(sn["updates"]["resolve"], true);
    assert_eq!(sn["on_closed"], "reopen");
    assert_eq!(sn["work_notes_field"], "comments");

    let path = format!("/api/v1/integrations/{}", created.id());
    let answer = server
        .try_patch(&path, json!({"servicenow": {"close_code": "Resolved"}}))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let sn = &answer.body["servicenow"];
    assert_eq!(sn["fields"], created.body["servicenow"]["fields"]);
    assert_eq!(sn["updates"], created.body["servicenow"]["updates"]);
    assert_eq!(sn["on_closed"], "reopen");
    assert_eq!(sn["work_notes_field"], "comments");

    // A nested key merges; the list is replaced as a whole.
    let answer = server
        .try_patch(
            &path,
            json!({"servicenow": {"updates": {"comments": false}, "fields": []}}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let sn = &answer.body["servicenow"];
    assert_eq!(sn["updates"]["severity"], false);
    assert_eq!(sn["updates"]["comments"], false);
    assert_eq!(sn["fields"], json!([]));
    let stored = server.try_get(&path).await;
    assert_eq!(stored.body["servicenow"]["on_closed"], "reopen");
}

async fn omitted_mappings_take_the_defaults(backend: Backend) {
    let server = start(backend).await;
    let team = server.team("ops").await;
    let created = server
        .try_post("/api/v1/integrations", integration_body(team))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let sn = &created.body["servicenow"];
    assert_eq!(sn["fields"], json!([]));
    assert_eq!(sn["on_closed"], "skip");
    assert_eq!(sn["state_closed"], "7");
    assert_eq!(sn["work_notes_field"], "work_notes");
    assert_eq!(sn["updates"]["severity"], true);
}

async fn an_invalid_template_is_refused_naming_the_mapping(backend: Backend) {
    let server = start(backend).await;
    let team = server.team("ops").await;
    let mut body = integration_body(team);
    body["servicenow"]["fields"] = json!([
        {"field": "category", "value": "network", "when": "create"},
        {"field": "cmdb_ci", "value": "{{ attributes.instance }}", "when": "create"},
        {"field": "u_bad", "value": "{{ title ", "when": "always"},
    ]);
    let answer = server.try_post("/api/v1/integrations", body).await;
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.field(), "servicenow.fields[2].value", "{answer:?}");

    // The same on a PATCH of a valid integration, which stays as it was.
    let created = server
        .try_post("/api/v1/integrations", integration_body(team))
        .await;
    let path = format!("/api/v1/integrations/{}", created.id());
    let answer = server
        .try_patch(
            &path,
            json!({"servicenow": {"fields": [
                {"field": "a", "value": "x", "when": "create"},
                {"field": "b", "value": "y", "when": "create"},
                {"field": "c", "value": "{% if %}", "when": "create"},
            ]}}),
        )
        .await;
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.field(), "servicenow.fields[2].value", "{answer:?}");
    assert_eq!(
        server.try_get(&path).await.body["servicenow"]["fields"],
        json!([])
    );
}

async fn rules_accept_and_answer_set_fields(backend: Backend) {
    let server = start(backend).await;
    let team = server.team("ops").await;
    let rule = json!({
        "team_id": team,
        "name": "criticals to network",
        "when": {"severity": ["critical"]},
        "then": {"set_fields": {"assignment_group": "Network L2"}},
    });
    let created = server.try_post("/api/v1/routing-rules", rule).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(
        created.body["then"]["set_fields"]["assignment_group"],
        "Network L2"
    );
    let path = format!("/api/v1/routing-rules/{}", created.id());
    let read = server.try_get(&path).await;
    assert_eq!(
        read.body["then"]["set_fields"],
        created.body["then"]["set_fields"]
    );

    let bad = json!({
        "team_id": team,
        "name": "bad",
        "then": {"set_fields": {"Not A Name": "x"}},
    });
    let answer = server.try_post("/api/v1/routing-rules", bad).await;
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.field(), "then.set_fields");
}

on_both_backends!(
    mappings_are_answered_and_kept_by_a_patch,
    omitted_mappings_take_the_defaults,
    an_invalid_template_is_refused_naming_the_mapping,
    rules_accept_and_answer_set_fields,
    a_comment_lands_on_the_timeline,
    the_preview_sends_mappings_and_display_values_as_the_engine_would,
);

async fn the_preview_sends_mappings_and_display_values_as_the_engine_would(backend: Backend) {
    let server = start(backend).await;
    let team = server.team("ops").await;
    let mut body = integration_body(team);
    for (key, value) in mapped().as_object().unwrap() {
        body["servicenow"][key] = value.clone();
    }
    let integration = server.try_post("/api/v1/integrations", body).await.id();
    let incident = server
        .try_post(
            "/api/v1/incidents",
            json!({"team_id": team, "title": "Disk full", "severity": "warning",
                   "attributes": {"instance": "db-7"}}),
        )
        .await
        .id();
    let answer = server
        .try_post(
            &format!("/api/v1/integrations/{integration}/preview"),
            json!({"incident_id": incident}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let requests = answer.body["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2, "{}", answer.body);
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[0]["body"]["cmdb_ci"], "db-7");
    assert_eq!(requests[0]["display_values"], false);
    assert!(requests[0]["body"].get("assignment_group").is_none());
    assert_eq!(requests[1]["method"], "PATCH");
    assert_eq!(requests[1]["display_values"], true);
    assert_eq!(requests[1]["body"]["assignment_group"], "ops L2");
    assert!(requests[1]["path"]
        .as_str()
        .unwrap()
        .ends_with("?sysparm_input_display_value=true"));
    assert_eq!(answer.body["display_fields"], json!(["assignment_group"]));
}

async fn a_comment_lands_on_the_timeline(backend: Backend) {
    let server = start(backend).await;
    let team = server.team("ops").await;
    let incident = server.incident(team, "Checkout down", "critical").await;
    let path = format!("/api/v1/incidents/{incident}/comments");
    let answer = server
        .try_post(&path, json!({"text": "rolled back the deploy"}))
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let timeline = answer.body["timeline"].as_array().unwrap();
    assert!(
        timeline
            .iter()
            .any(|e| e["detail"] == "rolled back the deploy" && e["kind"] == "comment"),
        "{timeline:?}"
    );
    let answer = server.try_post(&path, json!({"text": "  "})).await;
    assert_eq!(answer.status, 422, "{answer:?}");
    assert_eq!(answer.field(), "text");
    let missing = format!("/api/v1/incidents/{}/comments", uuid::Uuid::now_v7());
    let answer = server.try_post(&missing, json!({"text": "x"})).await;
    assert_eq!(answer.status, 404, "{answer:?}");
}
