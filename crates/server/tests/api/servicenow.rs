//! Setting an integration up against the ServiceNow emulator: test connection, choice
//! lists, warnings for unknown mapped values, the preview of the next sync, the call log.

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{json, Value};
use snowbound_emulator::{Emulator, EmulatorConfig, User};
use snowbound_store::LeaseOutcome;
use uuid::Uuid;

use crate::{integration_body, start, TestApp};

async fn emulator() -> Emulator {
    let users = [
        "snowbound:right-pass:itil,personalize_choices",
        "agent:agent-pass:itil",
    ];
    Emulator::start(EmulatorConfig {
        users: users.iter().map(|u| u.parse::<User>().unwrap()).collect(),
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// An integration on the emulator as `user`; `servicenow` keys override the defaults.
async fn integration(
    server: &TestApp,
    emu: &Emulator,
    user: (&str, &str),
    servicenow: Value,
) -> Value {
    let team = server.team(&format!("team-{}", Uuid::now_v7())).await;
    let mut body = integration_body(team);
    body["servicenow"]["instance_url"] = json!(emu.base_url());
    body["servicenow"]["username"] = json!(user.0);
    body["servicenow"]["password"] = json!(user.1);
    for (key, value) in servicenow.as_object().unwrap() {
        body["servicenow"][key] = value.clone();
    }
    let answer = server.try_post("/api/v1/integrations", body).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    answer.body
}

const GOOD: (&str, &str) = ("snowbound", "right-pass");

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[tokio::test]
async fn test_connection_reports_each_problem_and_logs_its_calls() {
    let server = start().await;
    let emu = emulator().await;

    let good = integration(&server, &emu, GOOD, json!({})).await;
    let id = good["id"].as_str().unwrap();
    let answer = server
        .try_post(
            &format!("/api/v1/integrations/{id}/test-connection"),
            json!({}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["ok"], true, "{answer:?}");
    assert_eq!(answer.body["warnings"], json!([]));
    assert!(answer.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["ok"] == true));

    let calls = server
        .try_get(&format!("/api/v1/integrations/{id}/api-calls"))
        .await;
    assert_eq!(calls.status, 200, "{calls:?}");
    let list = calls.body.as_array().unwrap();
    assert!(!list.is_empty());
    assert!(!calls.text.contains("right-pass"));
    let times: Vec<&str> = list.iter().map(|c| c["at"].as_str().unwrap()).collect();
    let mut newest_first = times.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, newest_first);
    let ok_calls = server
        .try_get(&format!(
            "/api/v1/integrations/{id}/api-calls?status_class=2"
        ))
        .await;
    assert_eq!(ok_calls.body.as_array().unwrap().len(), list.len());
    let failed = server
        .try_get(&format!(
            "/api/v1/integrations/{id}/api-calls?status_class=4"
        ))
        .await;
    assert_eq!(failed.body, json!([]));
    let bad = server
        .try_get(&format!(
            "/api/v1/integrations/{id}/api-calls?status_class=7"
        ))
        .await;
    assert_eq!((bad.status, bad.field()), (422, "status_class"));

    let wrong = integration(&server, &emu, ("snowbound", "wrong"), json!({})).await;
    let id = wrong["id"].as_str().unwrap();
    let answer = server
        .call_as(
            Method::POST,
            &format!("/api/v1/integrations/{id}/test-connection"),
            crate::ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(answer.body["ok"], false, "{answer:?}");
    assert_eq!(check(&answer.body, "Credentials accepted")["ok"], false);
    let failed = server
        .try_get(&format!(
            "/api/v1/integrations/{id}/api-calls?status_class=4"
        ))
        .await;
    assert_eq!(failed.body[0]["status"], 401, "{failed:?}");

    let no_table = integration(&server, &emu, GOOD, json!({"table": "u_no_such_table"})).await;
    let id = no_table["id"].as_str().unwrap();
    let answer = server
        .try_post(
            &format!("/api/v1/integrations/{id}/test-connection"),
            json!({}),
        )
        .await;
    assert_eq!(answer.body["ok"], false, "{answer:?}");
    assert_eq!(check(&answer.body, "Credentials accepted")["ok"], true);
    assert_eq!(check(&answer.body, "Table readable")["ok"], false);

    let agent = integration(&server, &emu, ("agent", "agent-pass"), json!({})).await;
    let id = agent["id"].as_str().unwrap();
    let answer = server
        .try_post(
            &format!("/api/v1/integrations/{id}/test-connection"),
            json!({}),
        )
        .await;
    assert_eq!(answer.body["ok"], true, "{answer:?}");
    let warnings = answer.body["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("sys_choice")),
        "{answer:?}"
    );
}

fn sys_choice_reads(emu: &Emulator) -> usize {
    emu.requests()
        .iter()
        .filter(|r| r.path.ends_with("/sys_choice"))
        .count()
}

#[tokio::test]
async fn choices_are_cached_and_403_is_a_warning() {
    let server = start().await;
    let emu = emulator().await;
    let good = integration(&server, &emu, GOOD, json!({})).await;
    let path = format!(
        "/api/v1/integrations/{}/choices",
        good["id"].as_str().unwrap()
    );

    let answer = server.try_get(&format!("{path}?field=state")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["field"], "state");
    assert!(answer.body.get("warning").is_none(), "{answer:?}");
    let choices = answer.body["choices"].as_array().unwrap();
    assert!(
        choices.contains(&json!({"value": "6", "label": "Resolved"})),
        "{answer:?}"
    );

    let reads = sys_choice_reads(&emu);
    let again = server.try_get(&format!("{path}?field=state")).await;
    assert_eq!(again.body, answer.body);
    assert_eq!(sys_choice_reads(&emu), reads, "served from the cache");
    let refreshed = server
        .try_get(&format!("{path}?field=state&refresh=true"))
        .await;
    assert_eq!(refreshed.body, answer.body);
    assert_eq!(sys_choice_reads(&emu), reads + 1);

    let close_codes = server.try_get(&format!("{path}?field=close_code")).await;
    let values: Vec<&str> = close_codes.body["choices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_str().unwrap())
        .collect();
    assert!(values.contains(&"Solution provided"));
    assert!(
        !values.contains(&"Solved (Permanently)"),
        "inactive choices are left out"
    );

    for (query, field) in [
        ("", "field"),
        ("?field=State%5E", "field"),
        ("?field=state&refresh=maybe", "refresh"),
    ] {
        let answer = server.try_get(&format!("{path}{query}")).await;
        assert_eq!(
            (answer.status, answer.field()),
            (422, field),
            "{query} → {answer:?}"
        );
    }

    let agent = integration(&server, &emu, ("agent", "agent-pass"), json!({})).await;
    let path = format!(
        "/api/v1/integrations/{}/choices?field=state",
        agent["id"].as_str().unwrap()
    );
    let answer = server.try_get(&path).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["choices"], json!([]));
    let warning = answer.body["warning"].as_str().unwrap();
    assert!(
        warning.contains("sys_choice") && warning.contains("403"),
        "{warning}"
    );
}

fn warned_fields(integration: &Value) -> Vec<String> {
    integration["warnings"]
        .as_array()
        .unwrap_or_else(|| panic!("no warnings in {integration}"))
        .iter()
        .map(|w| w.as_str().unwrap().split(':').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_field_mappings_literal_choice_is_checked_against_sys_choice() {
    let server = start().await;
    let emu = emulator().await;
    let mapped = integration(
        &server,
        &emu,
        GOOD,
        json!({"fields": [
            {"field": "category", "value": "network", "when": "create"},
            {"field": "subcategory", "value": "{{ attributes.kind }}", "when": "create"},
            {"field": "contact_type", "value": "carrier pigeon", "when": "always"},
            {"field": "escalation", "value": "Overdue", "when": "create", "display": true},
        ]}),
    )
    .await;
    // Only the literal internal value that is no choice: templates render later, and a
    // display value is a label ServiceNow resolves.
    assert_eq!(warned_fields(&mapped), ["servicenow.fields[2].value"]);
}

#[tokio::test]
async fn mapped_values_unknown_to_servicenow_are_warnings_not_errors() {
    let server = start().await;
    let emu = emulator().await;

    let good = integration(&server, &emu, GOOD, json!({"state_acknowledged": "2"})).await;
    assert_eq!(good["warnings"], json!([]), "{good}");

    let odd = integration(
        &server,
        &emu,
        GOOD,
        json!({"state_resolved": "9", "close_code": "Solved (Permanently)",
               "severity": {"primary_map": {"minor": "7"}}}),
    )
    .await;
    assert_eq!(
        warned_fields(&odd),
        [
            "servicenow.state_resolved",
            "servicenow.close_code",
            "servicenow.severity.primary_map.minor"
        ]
    );
    let stored = server
        .try_get(&format!(
            "/api/v1/integrations/{}",
            odd["id"].as_str().unwrap()
        ))
        .await;
    assert!(stored.body.get("warnings").is_none());
    assert_eq!(stored.body["servicenow"]["state_resolved"], "9");

    let path = format!("/api/v1/integrations/{}", odd["id"].as_str().unwrap());
    let answer = server
        .try_patch(
            &path,
            json!({"servicenow": {"state_resolved": "6", "close_code": "Solution provided"}}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        warned_fields(&answer.body),
        ["servicenow.severity.primary_map.minor"]
    );

    // Without read on sys_choice there is nothing to compare with: no warnings.
    let agent = integration(
        &server,
        &emu,
        ("agent", "agent-pass"),
        json!({"state_resolved": "9"}),
    )
    .await;
    assert_eq!(agent["warnings"], json!([]));
}

#[tokio::test]
async fn preview_shows_the_create_then_only_the_diff() {
    let server = start().await;
    let emu = emulator().await;
    let sn = integration(&server, &emu, GOOD, json!({})).await;
    let integration_id: Uuid = sn["id"].as_str().unwrap().parse().unwrap();
    let team: Uuid = sn["root_team_id"].as_str().unwrap().parse().unwrap();
    let incident = server
        .try_post(
            "/api/v1/incidents",
            json!({"team_id": team, "title": "Disk full",
                                          "description": "95% used", "severity": "warning"}),
        )
        .await
        .id();
    let preview = format!("/api/v1/integrations/{integration_id}/preview");

    let answer = server
        .try_post(&preview, json!({"incident_id": incident}))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["linked"], false);
    let requests = answer.body["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[0]["path"], "/api/now/table/incident");
    let created = requests[0]["body"].clone();
    assert_eq!(created["correlation_id"], incident.to_string());
    assert_eq!(created["short_description"], "Disk full");
    assert_eq!(created["state"], "1");
    assert_eq!(created["urgency"], "2");
    assert_eq!(
        created["description"],
        format!("95% used\n\nSnowbound incident: http://snowbound.test/incidents/{incident}")
    );

    let answer = server
        .try_post(&preview, json!({"incident_id": Uuid::now_v7()}))
        .await;
    assert_eq!((answer.status, answer.field()), (422, "incident_id"));

    // Forward, and let the store record a sync as the engine would after the POST.
    let forward = server
        .try_post(
            &format!("/api/v1/incidents/{incident}/forward"),
            json!({"integration_id": integration_id}),
        )
        .await;
    assert_eq!(forward.status, 200, "{forward:?}");
    let now = Utc::now();
    let leases = server
        .store()
        .lease_due_links("test", now, now + Duration::minutes(1), 10, None)
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    let sent: snowbound_core::FieldMap = serde_json::from_value(created).unwrap();
    let synced = LeaseOutcome::Synced {
        sys_id: "a1b2c3".into(),
        number: "INC0010001".into(),
        sent,
        servicenow_state: Some("1".into()),
    };
    assert!(server
        .store()
        .complete_lease(&leases[0], &synced)
        .await
        .unwrap());
    let answer = server
        .try_post(&preview, json!({"incident_id": incident}))
        .await;
    assert_eq!(
        answer.body,
        json!({"linked": true, "requests": [], "display_fields": [], "error": null})
    );

    server
        .try_patch(
            &format!("/api/v1/incidents/{incident}"),
            json!({"severity": "critical", "title": "renamed"}),
        )
        .await;
    server
        .try_post(
            &format!("/api/v1/incidents/{incident}/resolve"),
            json!({"comment": "Freed 20 GB"}),
        )
        .await;
    let answer = server
        .try_post(&preview, json!({"incident_id": incident}))
        .await;
    assert_eq!(
        answer.body["requests"],
        json!([{
            "method": "PATCH",
            "path": "/api/now/table/incident/a1b2c3",
            "body": {"close_code": "Solution provided", "close_notes": "Freed 20 GB",
                     "state": "6", "urgency": "1"},
            "display_values": false,
        }])
    );
    let detail = server
        .try_get(&format!("/api/v1/incidents/{incident}"))
        .await;
    assert_eq!(detail.body["links"][0]["sys_id"], "a1b2c3");
    assert_eq!(detail.body["links"][0]["number"], "INC0010001");
}

#[tokio::test]
async fn incident_api_calls_are_scoped_to_the_incident() {
    let server = start().await;
    let team = server.team("ops").await;
    let incident = server.incident(team, "x", "warning").await;
    let answer = server
        .try_get(&format!("/api/v1/incidents/{incident}/api-calls"))
        .await;
    assert_eq!((answer.status, answer.body.clone()), (200, json!([])));
    let token = server.token("other", &[server.team("db").await]).await;
    let answer = server
        .call_as(
            Method::GET,
            &format!("/api/v1/incidents/{incident}/api-calls"),
            &token,
            None,
        )
        .await;
    assert_eq!(answer.status, 404);
}
