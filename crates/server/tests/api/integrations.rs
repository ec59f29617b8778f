//! Integrations: the seed's defaults, validation naming the field, PATCH as a partial
//! merge, the password never shown, and team scoping.

use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::{integration, integration_body, start, PASSWORD};

#[tokio::test]
async fn create_fills_in_the_seed_defaults_and_hides_the_password() {
    let server = start().await;
    let team = server.team("ops").await;
    let answer = server
        .try_post("/api/v1/integrations", integration_body(team))
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    assert!(!answer.text.contains(PASSWORD));
    let b = &answer.body;
    assert_eq!(b["type"], "servicenow");
    assert_eq!(b["forwarding"], "always_after_forwarding");
    assert_eq!(b["password_set"], true);
    let sn = &b["servicenow"];
    assert!(sn.get("password").is_none());
    assert_eq!(sn["table"], "incident");
    assert_eq!(sn["state_open"], "1");
    assert_eq!(sn["state_resolved"], "6");
    assert_eq!(sn["close_code_field"], "close_code");
    assert_eq!(sn["close_notes_field"], "close_notes");
    assert_eq!(sn["close_notes_default"], "Resolved from Snowbound");
    assert_eq!(sn["close_code"], "Solution provided");
    assert_eq!(sn["severity"]["primary_field"], "urgency");
    assert_eq!(
        sn["severity"]["primary_map"],
        json!({"critical": "1", "warning": "2", "minor": "3"})
    );
    assert_eq!(sn["severity"]["secondary_field"], json!(null));

    let id = answer.id();
    // The create answers what GET answers, plus the choice warnings (none: ServiceNow
    // cannot be reached).
    let got = server.try_get(&format!("/api/v1/integrations/{id}")).await;
    let mut created = answer.body.clone();
    assert_eq!(
        created.as_object_mut().unwrap().remove("warnings"),
        Some(json!([]))
    );
    assert_eq!(got.body, created);
    let list = server.try_get("/api/v1/integrations").await;
    assert!(!list.text.contains(PASSWORD));
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    let stored = server
        .store()
        .integration_credentials(id)
        .await
        .unwrap()
        .password
        .unwrap();
    assert_eq!(stored.expose_secret(), PASSWORD);
}

/// A change to a valid body that makes one field bad.
type Edit = dyn Fn(&mut serde_json::Value);

#[tokio::test]
async fn every_bad_field_is_named() {
    let server = start().await;
    let team = server.team("ops").await;
    let cases: Vec<(Box<Edit>, &str)> = vec![
        (
            Box::new(|b| {
                b["servicenow"]
                    .as_object_mut()
                    .unwrap()
                    .remove("close_code");
            }),
            "servicenow.close_code",
        ),
        (
            Box::new(|b| b["servicenow"]["close_code"] = json!(" ")),
            "servicenow.close_code",
        ),
        (
            Box::new(|b| {
                b["servicenow"].as_object_mut().unwrap().remove("password");
            }),
            "servicenow.password",
        ),
        (
            Box::new(|b| b["servicenow"]["instance_url"] = json!("ftp://acme.example.com")),
            "servicenow.instance_url",
        ),
        (
            Box::new(|b| b["servicenow"]["table"] = json!("Incident;drop")),
            "servicenow.table",
        ),
        (
            Box::new(|b| b["servicenow"]["close_cod"] = json!("x")),
            "servicenow.close_cod",
        ),
        (
            Box::new(|b| b["servicenow"]["severity"] = json!({"primary_map": {"minor": ""}})),
            "servicenow.severity.primary_map.minor",
        ),
        (
            Box::new(|b| b["servicenow"]["severity"] = json!({"secondary_field": "impact"})),
            "servicenow.severity.secondary_map",
        ),
        (
            Box::new(|b| b["forwarding"] = json!("sometimes")),
            "forwarding",
        ),
        (Box::new(|b| b["type"] = json!("jira")), "type"),
        (
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("type");
            }),
            "type",
        ),
        (Box::new(|b| b["display_name"] = json!("")), "display_name"),
        (
            Box::new(|b| b["root_team_id"] = json!(uuid::Uuid::now_v7())),
            "root_team_id",
        ),
        (
            Box::new(|b| b["team_ids"] = json!([uuid::Uuid::now_v7()])),
            "team_ids",
        ),
    ];
    for (change, field) in cases {
        let mut body = integration_body(team);
        change(&mut body);
        let answer = server.try_post("/api/v1/integrations", body.clone()).await;
        assert!((400..500).contains(&answer.status), "{body} → {answer:?}");
        assert_eq!(answer.field(), field, "{body} → {answer:?}");
    }
    // Several problems: the first leads, all are listed.
    let mut body = integration_body(team);
    body["display_name"] = json!("");
    body["servicenow"]["close_code"] = json!("");
    let answer = server.try_post("/api/v1/integrations", body).await;
    assert_eq!(answer.field(), "display_name");
    let fields: Vec<&str> = answer.body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["display_name", "servicenow.close_code"]);
    assert_eq!(server.try_get("/api/v1/integrations").await.body, json!([]));
}

#[tokio::test]
async fn patch_merges_nested_keys_and_keeps_the_password() {
    let server = start().await;
    let team = server.team("ops").await;
    let mut body = integration_body(team);
    body["servicenow"]["severity"] = json!({
        "secondary_field": "impact",
        "secondary_map": {"critical": "1", "warning": "2", "minor": "2"},
    });
    let created = server.try_post("/api/v1/integrations", body).await;
    assert_eq!(created.status, 201, "{created:?}");
    let id = created.id();
    let path = format!("/api/v1/integrations/{id}");

    let answer = server
        .try_patch(
            &path,
            json!({"servicenow": {"severity": {"primary_map": {"minor": "4"}},
                                             "state_acknowledged": "2"}}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(!answer.text.contains(PASSWORD));
    let sn = &answer.body["servicenow"];
    assert_eq!(
        sn["severity"]["primary_map"],
        json!({"critical": "1", "warning": "2", "minor": "4"})
    );
    assert_eq!(sn["severity"]["secondary_field"], "impact");
    assert_eq!(sn["severity"]["secondary_map"]["minor"], "2");
    assert_eq!(sn["state_acknowledged"], "2");
    assert_eq!(sn["close_code"], "Solution provided");
    assert_eq!(sn["username"], "snowbound");
    assert_eq!(answer.body["display_name"], "ServiceNow");
    assert_eq!(answer.body["password_set"], true);
    let stored = server
        .store()
        .integration_credentials(id)
        .await
        .unwrap()
        .password
        .unwrap();
    assert_eq!(stored.expose_secret(), PASSWORD);

    // null turns the secondary field off; a new password replaces the old one.
    let answer = server
        .try_patch(
            &path,
            json!({"display_name": "SN prod",
                             "servicenow": {"severity": {"secondary_field": null},
                                            "password": "new-pass"}}),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(!answer.text.contains("new-pass"));
    assert_eq!(
        answer.body["servicenow"]["severity"]["secondary_field"],
        json!(null)
    );
    assert_eq!(
        answer.body["servicenow"]["severity"]["secondary_map"],
        json!(null)
    );
    assert_eq!(
        answer.body["servicenow"]["severity"]["primary_map"]["minor"],
        "4"
    );
    assert_eq!(answer.body["display_name"], "SN prod");
    let stored = server
        .store()
        .integration_credentials(id)
        .await
        .unwrap()
        .password
        .unwrap();
    assert_eq!(stored.expose_secret(), "new-pass");

    // A bad PATCH names its field and changes nothing.
    let before = server.try_get(&path).await.body;
    for (patch, field) in [
        (
            json!({"servicenow": {"close_code": ""}}),
            "servicenow.close_code",
        ),
        (
            json!({"servicenow": {"close_code": null}}),
            "servicenow.close_code",
        ),
        (json!({"servicenow": {"tabel": "x"}}), "servicenow.tabel"),
        (json!({"forwarding": "never"}), "forwarding"),
        (
            json!({"servicenow": {"password": ""}}),
            "servicenow.password",
        ),
    ] {
        let answer = server.try_patch(&path, patch.clone()).await;
        assert!((400..500).contains(&answer.status), "{patch} → {answer:?}");
        assert_eq!(answer.field(), field, "{patch} → {answer:?}");
    }
    assert_eq!(server.try_get(&path).await.body, before);
}

#[tokio::test]
async fn delete_removes_the_integration() {
    let server = start().await;
    let team = server.team("ops").await;
    let id = integration(&server, team, "always").await;
    let path = format!("/api/v1/integrations/{id}");
    let answer = server
        .call_as(Method::DELETE, &path, crate::ADMIN_TOKEN, None)
        .await;
    assert_eq!(answer.status, 204, "{answer:?}");
    assert_eq!(server.try_get(&path).await.status, 404);
}

#[tokio::test]
async fn a_team_token_sees_only_its_teams_integrations() {
    let server = start().await;
    let ops = server.team("ops").await;
    let db = server.team("db").await;
    let mine = integration(&server, ops, "always").await;
    let theirs = integration(&server, db, "always").await;
    let token = server.token("ops-bot", &[ops]).await;

    let list = server
        .call_as(Method::GET, "/api/v1/integrations", &token, None)
        .await;
    let ids: Vec<&str> = list
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [mine.to_string()]);
    let path = format!("/api/v1/integrations/{theirs}");
    for method in [Method::GET, Method::DELETE] {
        let answer = server.call_as(method, &path, &token, None).await;
        assert_eq!(answer.status, 404, "{answer:?}");
    }
    let answer = server
        .call_as(
            Method::PATCH,
            &path,
            &token,
            Some(json!({"display_name": "mine now"})),
        )
        .await;
    assert_eq!(answer.status, 404, "{answer:?}");
    // Nor can it create one for another team, or move its own there.
    let answer = server
        .call_as(
            Method::POST,
            "/api/v1/integrations",
            &token,
            Some(integration_body(db)),
        )
        .await;
    assert_eq!(
        (answer.status, answer.field()),
        (422, "root_team_id"),
        "{answer:?}"
    );
    let answer = server
        .call_as(
            Method::PATCH,
            &format!("/api/v1/integrations/{mine}"),
            &token,
            Some(json!({"root_team_id": db})),
        )
        .await;
    assert_eq!(
        (answer.status, answer.field()),
        (422, "root_team_id"),
        "{answer:?}"
    );
    let answer = server
        .call_as(
            Method::PATCH,
            &format!("/api/v1/integrations/{mine}"),
            &token,
            Some(json!({"display_name": "Ops SN"})),
        )
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
}
