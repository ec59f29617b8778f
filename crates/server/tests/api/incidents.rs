//! Incidents: the lifecycle and its timeline, edits, filters, team scoping, forwarding
//! and links.

use reqwest::Method;
use serde_json::{json, Value};

use crate::{integration, start};

fn kinds(incident: &Value) -> Vec<&str> {
    incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn lifecycle_transitions_and_timeline() {
    let server = start().await;
    let team = server.team("ops").await;
    let token = server.token("alice", &[team]).await;
    let created = server
        .call_as(
            Method::POST,
            "/api/v1/incidents",
            &token,
            Some(
                json!({"team_id": team, "title": "Disk full on db-1", "severity": "critical",
                        "description": "95% used", "attributes": {"host": "db-1"}}),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let b = &created.body;
    assert_eq!(b["status"], "open");
    assert_eq!(b["severity"], "critical");
    assert_eq!(b["attributes"], json!({"host": "db-1"}));
    assert_eq!(b["resolve_comment"], json!(null));
    assert_eq!(b["links"], json!([]));
    assert_eq!(kinds(b), ["opened"]);
    assert_eq!(b["timeline"][0]["actor"], "alice");
    let base = format!("/api/v1/incidents/{}", created.id());
    let act = |action: &'static str, body: Option<Value>| {
        let server = &server;
        let token = token.clone();
        let path = format!("{base}/{action}");
        async move { server.call_as(Method::POST, &path, &token, body).await }
    };

    let answer = act("acknowledge", None).await;
    assert_eq!(
        (answer.status, answer.body["status"].as_str()),
        (200, Some("acknowledged"))
    );
    let answer = act("acknowledge", None).await;
    assert_eq!((answer.status, answer.code()), (409, "invalid_transition"));
    let answer = act("reopen", None).await;
    assert_eq!((answer.status, answer.code()), (409, "invalid_transition"));

    let answer = act("resolve", Some(json!({"comment": "Freed 20 GB"}))).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["status"], "resolved");
    assert_eq!(answer.body["resolve_comment"], "Freed 20 GB");
    let answer = act("resolve", None).await;
    assert_eq!((answer.status, answer.code()), (409, "invalid_transition"));
    let answer = act("acknowledge", None).await;
    assert_eq!(answer.status, 409);

    let answer = act("reopen", Some(json!({}))).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["status"], "open");
    assert_eq!(answer.body["resolve_comment"], json!(null));
    let answer = act("resolve", None).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["resolve_comment"], json!(null));
    let answer = act("reopen", Some(json!({"comment": "x"}))).await;
    assert_eq!((answer.status, answer.field()), (422, "comment"));

    let answer = server.try_get(&base).await;
    assert_eq!(
        kinds(&answer.body),
        ["opened", "acknowledged", "resolved", "reopened", "resolved"]
    );
    let actors: Vec<&str> = answer.body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(actors.iter().all(|a| *a == "alice"), "{actors:?}");
    assert_eq!(
        answer.body["timeline"][2]["detail"],
        "resolved: Freed 20 GB"
    );
}

#[tokio::test]
async fn edits_change_only_what_is_sent() {
    let server = start().await;
    let team = server.team("ops").await;
    let id = server.incident(team, "Disk full", "warning").await;
    let path = format!("/api/v1/incidents/{id}");
    let answer = server
        .try_patch(&path, json!({"severity": "critical"}))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["severity"], "critical");
    assert_eq!(answer.body["title"], "Disk full");
    assert_eq!(kinds(&answer.body), ["opened", "severity_changed"]);
    assert_eq!(answer.body["timeline"][1]["actor"], "admin");

    let answer = server
        .try_patch(
            &path,
            json!({"title": "Disk full on db-1", "description": "d"}),
        )
        .await;
    assert_eq!(answer.body["title"], "Disk full on db-1");
    assert_eq!(answer.body["description"], "d");
    assert_eq!(answer.body["severity"], "critical");

    // Nothing new: no timeline entry.
    let answer = server
        .try_patch(&path, json!({"severity": "critical"}))
        .await;
    assert_eq!(kinds(&answer.body).len(), 4);
    for (patch, field) in [
        (json!({"severity": "huge"}), "severity"),
        (json!({"title": ""}), "title"),
        (json!({"status": "resolved"}), "status"),
    ] {
        let answer = server.try_patch(&path, patch.clone()).await;
        assert_eq!(
            (answer.status, answer.field()),
            (422, field),
            "{patch} → {answer:?}"
        );
    }
}

#[tokio::test]
async fn list_filters_and_team_scoping() {
    let server = start().await;
    let ops = server.team("ops").await;
    let db = server.team("db").await;
    let a = server.incident(ops, "a", "warning").await;
    let b = server.incident(ops, "b", "warning").await;
    let theirs = server.incident(db, "c", "warning").await;
    server
        .try_post(&format!("/api/v1/incidents/{b}/resolve"), json!({}))
        .await;
    let token = server.token("ops-bot", &[ops]).await;

    let ids = |answer: &crate::Answer| -> Vec<String> {
        let mut ids: Vec<String> = answer
            .body
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let mut all = vec![a.to_string(), b.to_string(), theirs.to_string()];
    all.sort();
    assert_eq!(ids(&server.try_get("/api/v1/incidents").await), all);
    let mine = server
        .call_as(Method::GET, "/api/v1/incidents", &token, None)
        .await;
    let mut expected = vec![a.to_string(), b.to_string()];
    expected.sort();
    assert_eq!(ids(&mine), expected);
    let open = server
        .call_as(Method::GET, "/api/v1/incidents?status=open", &token, None)
        .await;
    assert_eq!(ids(&open), [a.to_string()]);
    let by_team = server
        .try_get(&format!("/api/v1/incidents?team_id={db}"))
        .await;
    assert_eq!(ids(&by_team), [theirs.to_string()]);
    let other_team = server
        .call_as(
            Method::GET,
            &format!("/api/v1/incidents?team_id={db}"),
            &token,
            None,
        )
        .await;
    assert_eq!(other_team.body, json!([]));
    let minor = server.try_get("/api/v1/incidents?severity=minor").await;
    assert_eq!(minor.body, json!([]));

    // Another team's incident does not exist for this token.
    let path = format!("/api/v1/incidents/{theirs}");
    assert_eq!(
        server
            .call_as(Method::GET, &path, &token, None)
            .await
            .status,
        404
    );
    let answer = server
        .call_as(Method::POST, &format!("{path}/resolve"), &token, None)
        .await;
    assert_eq!(answer.status, 404);
    let answer = server
        .call_as(Method::PATCH, &path, &token, Some(json!({"title": "x"})))
        .await;
    assert_eq!(answer.status, 404);
    let answer = server
        .call_as(
            Method::POST,
            "/api/v1/incidents",
            &token,
            Some(json!({"team_id": db, "title": "t", "severity": "minor"})),
        )
        .await;
    assert_eq!((answer.status, answer.field()), (422, "team_id"));
    assert_eq!(server.try_get(&path).await.body["status"], "open");
}

#[tokio::test]
async fn always_integrations_link_at_creation() {
    let server = start().await;
    let ops = server.team("ops").await;
    let db = server.team("db").await;
    let always = integration(&server, ops, "always").await;
    integration(&server, ops, "always_after_forwarding").await;
    integration(&server, db, "always").await;
    let answer = server
        .try_post(
            "/api/v1/incidents",
            json!({"team_id": ops, "title": "t", "severity": "minor"}),
        )
        .await;
    assert_eq!(answer.status, 201, "{answer:?}");
    let links = answer.body["links"].as_array().unwrap();
    assert_eq!(links.len(), 1, "{answer:?}");
    assert_eq!(links[0]["integration_id"], always.to_string());
    assert_eq!(links[0]["integration_name"], "ServiceNow");
    assert_eq!(links[0]["state"], "pending");
    assert_eq!(links[0]["sys_id"], json!(null));
    assert_eq!(links[0]["attempts"], 0);
}

#[tokio::test]
async fn forwarding_rules() {
    let server = start().await;
    let ops = server.team("ops").await;
    let db = server.team("db").await;
    let after = integration(&server, ops, "always_after_forwarding").await;
    let snapshot = integration(&server, ops, "only_on_forwarding").await;
    let theirs = integration(&server, db, "always_after_forwarding").await;
    let id = server.incident(ops, "Disk full", "warning").await;
    let forward = format!("/api/v1/incidents/{id}/forward");

    let answer = server
        .try_post(&forward, json!({"integration_id": theirs}))
        .await;
    assert_eq!(
        (answer.status, answer.field()),
        (422, "integration_id"),
        "{answer:?}"
    );
    let answer = server
        .try_post(&forward, json!({"integration_id": uuid::Uuid::now_v7()}))
        .await;
    assert_eq!(
        (answer.status, answer.field()),
        (422, "integration_id"),
        "{answer:?}"
    );
    let answer = server.try_post(&forward, json!({})).await;
    assert_eq!(
        (answer.status, answer.field()),
        (422, "integration_id"),
        "{answer:?}"
    );
    assert!(server
        .store()
        .links_of_incident(id)
        .await
        .unwrap()
        .is_empty());

    let answer = server
        .try_post(&forward, json!({"integration_id": after}))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["links"].as_array().unwrap().len(), 1);
    assert_eq!(answer.body["links"][0]["state"], "pending");
    assert_eq!(kinds(&answer.body), ["opened", "forwarded"]);
    assert_eq!(
        answer.body["timeline"][1]["detail"],
        "forwarded to ServiceNow"
    );
    let link = server.store().get_link(id, after).await.unwrap();
    assert!(link.snapshot.is_none());

    let answer = server
        .try_post(&forward, json!({"integration_id": snapshot}))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let link = server.store().get_link(id, snapshot).await.unwrap();
    assert_eq!(link.snapshot.unwrap().title, "Disk full");

    // A team token cannot forward to an integration it cannot see.
    let token = server.token("ops-bot", &[ops]).await;
    let answer = server
        .call_as(
            Method::POST,
            &forward,
            &token,
            Some(json!({"integration_id": theirs})),
        )
        .await;
    assert_eq!((answer.status, answer.field()), (422, "integration_id"));

    let retry = format!("/api/v1/incidents/{id}/links/{after}/retry");
    let answer = server.call_as(Method::POST, &retry, &token, None).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let missing = format!("/api/v1/incidents/{id}/links/{theirs}/retry");
    let answer = server.call_as(Method::POST, &missing, &token, None).await;
    assert_eq!(answer.status, 404, "{answer:?}");
}
