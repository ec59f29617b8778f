//! Team boundaries over HTTP: a team token sees and changes only its teams' incidents,
//! integrations, sources and routing rules; another team's objects answer 404 on every
//! endpoint; missing, wrong and revoked tokens answer 401.

use crate::{integration, integration_body};
use reqwest::Method;
use serde_json::{json, Value};
use snowbound_testkit::{TestApp, ADMIN_TOKEN};
use uuid::Uuid;

/// Everything one team owns, made by the admin.
struct Owned {
    team: Uuid,
    integration: Uuid,
    incident: Uuid,
    source: Uuid,
    rule: Uuid,
}

async fn owned(server: &TestApp, name: &str) -> Owned {
    let team = server.team(name).await;
    let integration = integration(server, team, "always_after_forwarding").await;
    let incident = server
        .incident(team, &format!("{name} incident"), "warning")
        .await;
    let source = server
        .try_post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "webhook", "name": format!("{name} hook")}),
        )
        .await;
    assert_eq!(source.status, 201, "{source:?}");
    let rule = server
        .try_post(
            "/api/v1/routing-rules",
            json!({"team_id": team, "name": "all", "then": {"forward_to": [integration]}}),
        )
        .await;
    assert_eq!(rule.status, 201, "{rule:?}");
    Owned {
        team,
        integration,
        incident,
        source: source.id(),
        rule: rule.id(),
    }
}

/// Every endpoint that addresses one object of `other`.
fn object_calls(other: &Owned) -> Vec<(Method, String, Option<Value>)> {
    let (i, x, s, r) = (other.integration, other.incident, other.source, other.rule);
    let none = None;
    let empty = Some(json!({}));
    vec![
        (
            Method::GET,
            format!("/api/v1/integrations/{i}"),
            none.clone(),
        ),
        (
            Method::PATCH,
            format!("/api/v1/integrations/{i}"),
            Some(json!({"display_name": "mine now"})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/integrations/{i}"),
            none.clone(),
        ),
        (
            Method::POST,
            format!("/api/v1/integrations/{i}/test-connection"),
            empty.clone(),
        ),
        (
            Method::GET,
            format!("/api/v1/integrations/{i}/choices?field=state"),
            none.clone(),
        ),
        (
            Method::POST,
            format!("/api/v1/integrations/{i}/preview"),
            Some(json!({"incident_id": x})),
        ),
        (
            Method::GET,
            format!("/api/v1/integrations/{i}/api-calls"),
            none.clone(),
        ),
        (Method::GET, format!("/api/v1/incidents/{x}"), none.clone()),
        (
            Method::PATCH,
            format!("/api/v1/incidents/{x}"),
            Some(json!({"severity": "critical"})),
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{x}/acknowledge"),
            empty.clone(),
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{x}/resolve"),
            empty.clone(),
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{x}/reopen"),
            empty.clone(),
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{x}/forward"),
            Some(json!({"integration_id": i})),
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{x}/links/{i}/retry"),
            empty.clone(),
        ),
        (
            Method::GET,
            format!("/api/v1/incidents/{x}/api-calls"),
            none.clone(),
        ),
        (Method::GET, format!("/api/v1/sources/{s}"), none.clone()),
        (
            Method::PATCH,
            format!("/api/v1/sources/{s}"),
            Some(json!({"name": "mine now"})),
        ),
        (
            Method::POST,
            format!("/api/v1/sources/{s}/rotate"),
            empty.clone(),
        ),
        (Method::DELETE, format!("/api/v1/sources/{s}"), none.clone()),
        (
            Method::GET,
            format!("/api/v1/routing-rules/{r}"),
            none.clone(),
        ),
        (
            Method::PATCH,
            format!("/api/v1/routing-rules/{r}"),
            Some(json!({"name": "mine now"})),
        ),
        (Method::DELETE, format!("/api/v1/routing-rules/{r}"), none),
    ]
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_team_token_cannot_reach_another_teams_objects_on_any_endpoint() {
    let server = crate::start().await;
    let a = owned(&server, "alpha").await;
    let b = owned(&server, "beta").await;
    let token_a = server.token("alpha-bot", &[a.team]).await;
    let token_b = server.token("beta-bot", &[b.team]).await;

    for (token, mine, theirs) in [(&token_a, &a, &b), (&token_b, &b, &a)] {
        for (method, path, body) in object_calls(theirs) {
            let answer = server.call_as(method.clone(), &path, token, body).await;
            assert_eq!(answer.status, 404, "{method} {path}: {answer:?}");
            assert_eq!(answer.code(), "not_found", "{method} {path}");
        }
        // The same calls on its own objects are allowed (reads, to keep them intact).
        for path in [
            format!("/api/v1/integrations/{}", mine.integration),
            format!("/api/v1/incidents/{}", mine.incident),
            format!("/api/v1/sources/{}", mine.source),
            format!("/api/v1/routing-rules/{}", mine.rule),
        ] {
            let answer = server.call_as(Method::GET, &path, token, None).await;
            assert_eq!(answer.status, 200, "{path}: {answer:?}");
        }
        for list in [
            "/api/v1/teams",
            "/api/v1/incidents",
            "/api/v1/sources",
            "/api/v1/routing-rules",
        ] {
            let answer = server.call_as(Method::GET, list, token, None).await;
            assert_eq!(answer.status, 200, "{list}");
            let seen = ids(&answer.body);
            assert!(!seen.is_empty(), "{list} shows the team's own objects");
            for other in [theirs.team, theirs.incident, theirs.source, theirs.rule] {
                assert!(!seen.contains(&other.to_string()), "{list} leaks {other}");
            }
        }
        let integrations = server
            .call_as(Method::GET, "/api/v1/integrations", token, None)
            .await;
        assert_eq!(ids(&integrations.body), vec![mine.integration.to_string()]);
        let scoped = server
            .call_as(
                Method::GET,
                &format!("/api/v1/routing-rules?team_id={}", theirs.team),
                token,
                None,
            )
            .await;
        assert_eq!(scoped.body, json!([]));

        // Creating in another team: that team does not exist for this token.
        let t = theirs.team;
        for (path, body) in [
            (
                "/api/v1/incidents",
                json!({"team_id": t, "title": "x", "severity": "minor"}),
            ),
            (
                "/api/v1/sources",
                json!({"team_id": t, "type": "webhook", "name": "x"}),
            ),
            (
                "/api/v1/routing-rules",
                json!({"team_id": t, "name": "x", "then": {"stop": true}}),
            ),
        ] {
            let answer = server.call_as(Method::POST, path, token, Some(body)).await;
            assert_eq!(answer.status, 422, "{path}: {answer:?}");
            assert_eq!(answer.field(), "team_id", "{path}");
        }
        let mut integration = integration_body(t);
        integration["forwarding"] = json!("always");
        let answer = server
            .call_as(
                Method::POST,
                "/api/v1/integrations",
                token,
                Some(integration),
            )
            .await;
        assert_eq!(answer.status, 422, "{answer:?}");

        // Its own incident cannot be forwarded, nor routed, to another team's integration.
        let answer = server
            .call_as(
                Method::POST,
                &format!("/api/v1/incidents/{}/forward", mine.incident),
                token,
                Some(json!({"integration_id": theirs.integration})),
            )
            .await;
        assert_eq!(answer.status, 422, "{answer:?}");
        assert_eq!(answer.field(), "integration_id");
        let answer = server
            .call_as(
                Method::POST,
                "/api/v1/routing-rules",
                token,
                Some(json!({"team_id": mine.team, "name": "leak",
                            "then": {"forward_to": [mine.integration, theirs.integration]}})),
            )
            .await;
        assert_eq!(answer.status, 422, "{answer:?}");
        assert_eq!(answer.field(), "then.forward_to[1]");

        // Tokens and teams are the admin's.
        for (method, path, body) in [
            (
                Method::POST,
                "/api/v1/tokens".to_owned(),
                Some(json!({"name": "x", "team_ids": [mine.team]})),
            ),
            (Method::GET, "/api/v1/tokens".to_owned(), None),
            (
                Method::DELETE,
                format!("/api/v1/tokens/{}", Uuid::now_v7()),
                None,
            ),
            (
                Method::POST,
                "/api/v1/teams".to_owned(),
                Some(json!({"name": "x"})),
            ),
        ] {
            let answer = server.call_as(method.clone(), &path, token, body).await;
            assert_eq!(answer.status, 403, "{method} {path}: {answer:?}");
        }
    }

    // Nothing of either team changed.
    for team in [&a, &b] {
        let incident = server
            .try_get(&format!("/api/v1/incidents/{}", team.incident))
            .await;
        assert_eq!(incident.body["status"], "open");
        assert_eq!(incident.body["severity"], "warning");
        assert!(server
            .try_get(&format!("/api/v1/integrations/{}", team.integration))
            .await
            .body["display_name"]
            .as_str()
            .is_some_and(|n| n != "mine now"));
    }
}

#[tokio::test]
async fn an_integration_serves_its_root_team_and_the_teams_it_is_connected_to() {
    let server = crate::start().await;
    let root = server.team("root").await;
    let guest = server.team("guest").await;
    let mut body = integration_body(root);
    body["team_ids"] = json!([guest]);
    let shared = server.try_post("/api/v1/integrations", body).await.id();
    let guest_token = server.token("guest-bot", &[guest]).await;

    let seen = server
        .call_as(
            Method::GET,
            &format!("/api/v1/integrations/{shared}"),
            &guest_token,
            None,
        )
        .await;
    assert_eq!(seen.status, 200);
    let rule = server
        .call_as(
            Method::POST,
            "/api/v1/routing-rules",
            &guest_token,
            Some(
                json!({"team_id": guest, "name": "to shared", "when": {"severity": ["critical"]},
                        "then": {"forward_to": [shared]}}),
            ),
        )
        .await;
    assert_eq!(rule.status, 201, "{rule:?}");
    let changed = server
        .call_as(
            Method::PATCH,
            &format!("/api/v1/integrations/{shared}"),
            &guest_token,
            Some(json!({"display_name": "guest's"})),
        )
        .await;
    assert_eq!(changed.status, 403, "only the root team changes it");
}

#[tokio::test]
async fn missing_wrong_and_revoked_tokens_answer_401() {
    let server = crate::start().await;
    let team = server.team("ops").await;
    let created = server
        .try_post(
            "/api/v1/tokens",
            json!({"name": "ops-bot", "team_ids": [team]}),
        )
        .await;
    let token = created.body["token"].as_str().unwrap().to_owned();
    let token_id = created.id();

    for path in [
        "/api/v1/incidents",
        "/api/v1/integrations",
        "/api/v1/sources",
        "/api/v1/routing-rules",
        "/api/v1/teams",
    ] {
        let missing = server.send(server.request(Method::GET, path, None)).await;
        assert_eq!(missing.status, 401, "{path}");
        let wrong = server.call_as(Method::GET, path, "sbt_wrong", None).await;
        assert_eq!(wrong.status, 401, "{path}");
        assert_eq!(wrong.code(), "unauthorized");
        let right = server.call_as(Method::GET, path, &token, None).await;
        assert_eq!(right.status, 200, "{path}");
    }

    let listed = server.try_get("/api/v1/tokens").await;
    assert_eq!(ids(&listed.body), vec![token_id.to_string()]);
    assert!(listed.text.find(&token).is_none(), "a token is shown once");

    let revoked = server
        .call_as(
            Method::DELETE,
            &format!("/api/v1/tokens/{token_id}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(revoked.status, 204);
    let after = server
        .call_as(Method::GET, "/api/v1/incidents", &token, None)
        .await;
    assert_eq!(after.status, 401, "revocation works at once");
    let again = server
        .call_as(
            Method::DELETE,
            &format!("/api/v1/tokens/{token_id}"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(again.status, 404);
    assert_eq!(server.try_get("/api/v1/tokens").await.body, json!([]));
}

#[tokio::test]
async fn routing_rules_are_validated_and_patched_by_merge() {
    let server = crate::start().await;
    let team = server.team("ops").await;
    let integration = integration(&server, team, "always").await;
    let bad = [
        (
            json!({"team_id": team, "name": "r", "when": {"attributes": {"env": {"regex": "("}}},
                   "then": {"exclude_from": [integration]}}),
            "when.attributes.env.regex",
        ),
        (
            json!({"team_id": team, "name": "r", "when": {"attributes": {"env": {"like": "x"}}},
                   "then": {"exclude_from": [integration]}}),
            "when.attributes.env",
        ),
        (
            json!({"team_id": team, "name": "r", "when": {"severity": ["fatal"]},
                   "then": {"exclude_from": [integration]}}),
            "when.severity[0]",
        ),
        (json!({"team_id": team, "name": "r", "then": {}}), "then"),
        (
            json!({"team_id": team, "name": "r", "then": {"exclude_from": [Uuid::now_v7()]}}),
            "then.exclude_from[0]",
        ),
        (
            json!({"team_id": team, "name": " ", "then": {"stop": true}}),
            "name",
        ),
    ];
    for (body, field) in bad {
        let answer = server.try_post("/api/v1/routing-rules", body).await;
        assert_eq!(answer.status, 422, "{answer:?}");
        assert_eq!(answer.field(), field, "{answer:?}");
    }

    let first = server
        .try_post(
            "/api/v1/routing-rules",
            json!({"team_id": team, "name": "first",
                   "when": {"severity": ["critical"], "attributes": {"env": "prod"}},
                   "then": {"exclude_from": [integration]}}),
        )
        .await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.body["position"], 0);
    assert_eq!(
        first.body["when"]["attributes"]["env"],
        json!({"equals": "prod"})
    );
    let second = server
        .try_post(
            "/api/v1/routing-rules",
            json!({"team_id": team, "name": "second", "then": {"stop": true}}),
        )
        .await;
    assert_eq!(second.body["position"], 1);

    let patched = server
        .try_patch(
            &format!("/api/v1/routing-rules/{}", first.id()),
            json!({"position": 5, "when": {"severity": null, "title_contains": "db"}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    assert_eq!(
        patched.body["when"],
        json!({"attributes": {"env": {"equals": "prod"}}, "title_contains": "db"})
    );
    let order: Vec<String> = server
        .try_get(&format!("/api/v1/routing-rules?team_id={team}"))
        .await
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, vec!["second", "first"]);
    let moved = server
        .try_patch(
            &format!("/api/v1/routing-rules/{}", first.id()),
            json!({"team_id": server.team("other").await}),
        )
        .await;
    assert_eq!(moved.status, 422);
    assert_eq!(moved.field(), "team_id");
}
