//! The audit trail (issue #19) as an admin reads it: every change to integrations,
//! sources, rules, tokens and users is listed newest first with who made it and what
//! changed, and no secret that was sent appears anywhere in the answer or the page.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use snowbound_emulator::EmulatorConfig;
use snowbound_testkit::ui::{with_admin, Ui, ADMIN_EMAIL};
use snowbound_testkit::{id, on_both_backends, Backend, TestApp};

use crate::ui_admin::admin;

on_both_backends!(every_audited_change_is_listed_with_its_actor_and_no_secret);

const FIRST_PASSWORD: &str = "first-Integration-pw-7731";
const SECOND_PASSWORD: &str = "second-Integration-pw-9124";
const BOB_PASSWORD: &str = "bobs very own password";
const BOB_NEW_PASSWORD: &str = "bobs second password";
const GRAFANA_SECRET: &str = "grafana-Shared-secret-5510";
const GRAFANA_NEW_SECRET: &str = "grafana-Second-secret-6620";

/// The events of one object, newest first.
fn of<'a>(events: &'a [Value], object_id: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["object_id"] == object_id)
        .collect()
}

async fn every_audited_change_is_listed_with_its_actor_and_no_secret(backend: Backend) {
    let t = TestApp::spawn_with(backend, EmulatorConfig::default(), with_admin).await;
    let team = t.team("ops").await;

    // An integration, then a new password and name for it.
    let integration = id(&t
        .post(
            "/api/v1/integrations",
            json!({"display_name": "SN audited", "root_team_id": team, "type": "servicenow",
                   "forwarding": "always",
                   "servicenow": {"instance_url": t.emulator.base_url(), "username": "admin",
                                  "password": FIRST_PASSWORD,
                                  "close_code": "Solution provided"}}),
        )
        .await);
    t.patch(
        &format!("/api/v1/integrations/{integration}"),
        json!({"display_name": "SN renamed", "servicenow": {"password": SECOND_PASSWORD}}),
    )
    .await;

    // A source and a new ingest secret for it.
    let source = t
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "webhook", "name": "hooks"}),
        )
        .await;
    let first_url = source["ingest_url"].as_str().unwrap().to_owned();
    let source_id = id(&source);
    let rotated = t
        .post(&format!("/api/v1/sources/{source_id}/rotate"), json!({}))
        .await;
    let second_url = rotated["ingest_url"].as_str().unwrap().to_owned();

    // A Grafana source with a shared secret, then a new one.
    let grafana = id(&t
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "grafana", "name": "graf",
                   "grafana": {"hmac_secret": GRAFANA_SECRET}}),
        )
        .await);
    t.patch(
        &format!("/api/v1/sources/{grafana}"),
        json!({"grafana": {"hmac_secret": GRAFANA_NEW_SECRET}}),
    )
    .await;

    // A token, and a rule made with it (the token's name is the actor).
    let token = t.token("ci-bot", &[team]).await;
    let rule = t
        .call_as(
            Method::POST,
            "/api/v1/routing-rules",
            &token,
            Some(json!({"team_id": team, "name": "no staging",
                        "when": {"attributes": {"env": {"equals": "staging"}}},
                        "then": {"exclude_from": [integration]}})),
        )
        .await;
    assert_eq!(rule.status, 201, "{rule:?}");
    let rule_id = rule.id();

    // A user made on the Users page, then their access changed over the API.
    let mut ui = admin(&t).await;
    let created = ui
        .submit(
            "/users",
            "/users",
            &[("email", "bob@example.com"), ("password", BOB_PASSWORD)],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    let users = t.get("/api/v1/users").await;
    let bob = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "bob@example.com")
        .map(id)
        .unwrap();
    let reset = ui
        .submit(
            "/users",
            &format!("/users/{bob}/password"),
            &[("password", BOB_NEW_PASSWORD)],
        )
        .await;
    assert_eq!(reset.status, StatusCode::SEE_OTHER, "{}", reset.html);
    t.patch(&format!("/api/v1/users/{bob}"), json!({"team_ids": [team]}))
        .await;

    let answer = t.try_get("/api/v1/audit").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let secret_of = |url: &str| url.rsplit('/').next().unwrap().to_owned();
    for secret in [
        FIRST_PASSWORD,
        SECOND_PASSWORD,
        BOB_PASSWORD,
        BOB_NEW_PASSWORD,
        GRAFANA_SECRET,
        GRAFANA_NEW_SECRET,
        &token,
        &secret_of(&first_url),
        &secret_of(&second_url),
    ] {
        assert!(
            !answer.text.contains(secret),
            "`{secret}` in {}",
            answer.text
        );
    }
    let events = answer.body.as_array().unwrap().clone();
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    let on_integration = of(&events, &integration.to_string());
    let actions: Vec<&str> = on_integration
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["update", "create"]);
    let update = on_integration[0];
    assert_eq!(update["actor"], "admin");
    assert_eq!(update["object_type"], "integration");
    // The password lives apart from the settings: recorded under its own name.
    assert_eq!(update["changes"]["password"], "changed");
    assert_eq!(
        update["changes"]["display_name"],
        json!({"from": "SN audited", "to": "SN renamed"})
    );
    assert_eq!(on_integration[1]["changes"]["password"], "set");

    let on_source = of(&events, &source_id.to_string());
    assert_eq!(on_source[0]["action"], "rotate");
    assert_eq!(on_source[0]["changes"], json!({"secret": "changed"}));
    assert_eq!(on_source[1]["action"], "create");
    assert_eq!(
        on_source[1]["changes"]["name"],
        json!({"from": null, "to": "hooks"})
    );

    let on_rule = of(&events, &rule_id.to_string());
    assert_eq!(on_rule.len(), 1);
    assert_eq!(on_rule[0]["actor"], "ci-bot");
    assert_eq!(on_rule[0]["object_type"], "rule");

    let tokens: Vec<&Value> = events
        .iter()
        .filter(|e| e["object_type"] == "token")
        .collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(
        tokens[0]["changes"]["name"],
        json!({"from": null, "to": "ci-bot"})
    );
    assert_eq!(tokens[0]["changes"]["token"], "set");

    let on_grafana = of(&events, &grafana.to_string());
    assert_eq!(on_grafana[0]["action"], "update");
    assert_eq!(
        on_grafana[0]["changes"],
        json!({"grafana.hmac_secret": "changed"})
    );
    assert_eq!(on_grafana[1]["changes"]["grafana.hmac_secret"], "set");

    let on_bob = of(&events, &bob.to_string());
    let actions: Vec<&str> = on_bob
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["update_access", "reset_password", "create"]);
    assert_eq!(on_bob[0]["actor"], "admin");
    assert_eq!(
        on_bob[0]["changes"]["team_ids"],
        json!({"from": [], "to": [team]})
    );
    assert_eq!(on_bob[1]["actor"], ADMIN_EMAIL);
    assert_eq!(on_bob[1]["changes"], json!({"password": "changed"}));
    assert_eq!(on_bob[2]["actor"], ADMIN_EMAIL);
    assert_eq!(on_bob[2]["changes"]["password"], "set");

    // The first admin came from the environment at start-up.
    let first = events.last().unwrap();
    assert_eq!(
        (&first["actor"], &first["object_type"], &first["action"]),
        (&json!("environment"), &json!("user"), &json!("create"))
    );
    assert_eq!(first["changes"]["email"]["to"], ADMIN_EMAIL);

    // Filtered by object, and the admin's only.
    let only = t
        .get(&format!(
            "/api/v1/audit?object_type=source&object_id={source_id}"
        ))
        .await;
    assert_eq!(only.as_array().unwrap().len(), 2, "{only}");
    let misspelt = t.try_get("/api/v1/audit?object_type=integrations").await;
    assert_eq!(
        (misspelt.status, misspelt.field()),
        (422, "object_type"),
        "{misspelt:?}"
    );
    let refused = t.call_as(Method::GET, "/api/v1/audit", &token, None).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let token_id = tokens[0]["object_id"].as_str().unwrap().to_owned();
    let revoked = t.try_delete(&format!("/api/v1/tokens/{token_id}")).await;
    assert!(revoked.is_success(), "{revoked:?}");
    let on_token = t
        .get(&format!(
            "/api/v1/audit?object_type=token&object_id={token_id}"
        ))
        .await;
    assert_eq!(on_token[0]["action"], "revoke");
    assert_eq!(on_token[0]["changes"], json!({"token": "removed"}));

    // The page lists the same for an admin, and is not a member's.
    let page = ui.get("/audit?object_type=integration").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains("href=\"/audit\""));
    assert!(
        page.html.contains(&integration.to_string()),
        "{}",
        page.html
    );
    assert!(
        !page.html.contains(&source_id.to_string()),
        "filtered by type"
    );
    for secret in [FIRST_PASSWORD, SECOND_PASSWORD] {
        assert!(!page.html.contains(secret));
    }
    let mut member = Ui::new(&t.base);
    member.login("bob@example.com", BOB_NEW_PASSWORD).await;
    assert_eq!(member.get("/audit").await.status, StatusCode::FORBIDDEN);
    assert!(!member
        .get("/incidents")
        .await
        .html
        .contains("href=\"/audit\""));
}
