//! Conformance: authentication, roles/ACLs (docs/servicenow/TABLE_API.md §1.6, §4, §6) and rate limits (§5).

use crate::common::*;
use reqwest::Method;
use serde_json::json;
use snowbound_emulator::{EmulatorConfig, User};

#[tokio::test]
async fn s1_6_no_auth_and_wrong_password_are_401_with_www_authenticate() {
    let env = start().await;
    let no_auth = env
        .http
        .get(env.url("/api/now/table/incident"))
        .send()
        .await
        .unwrap();
    let wrong = env
        .as_user(Method::GET, "/api/now/table/incident", "admin", "nope")
        .send()
        .await
        .unwrap();
    let unknown = env
        .as_user(Method::POST, "/api/now/table/incident", "ghost", "x")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    for resp in [no_auth, wrong, unknown] {
        assert_eq!(resp.status(), 401);
        assert_eq!(
            resp.headers()["www-authenticate"],
            "BASIC realm=\"Service-now\""
        );
        assert_eq!(
            resp.headers()["content-type"],
            "application/json;charset=UTF-8"
        );
        assert_eq!(
            resp.text().await.unwrap(),
            r#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#
        );
    }
    assert!(env.emu.records("incident").is_empty());
}

#[tokio::test]
async fn s6_default_user_is_admin_admin() {
    let env = start_with(EmulatorConfig {
        users: vec![],
        ..Default::default()
    })
    .await;
    assert_eq!(env.get("/api/now/table/incident").await.status(), 200);
}

#[tokio::test]
async fn s6_itil_reads_and_writes_incidents() {
    let env = start_with(users_config()).await;
    let resp = env
        .as_user(Method::POST, "/api/now/table/incident", "agent", "pw")
        .json(&json!({"short_description": "by agent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let r = body(resp).await["result"].clone();
    assert_eq!(r["sys_created_by"], "agent");
    assert_eq!(
        r["opened_by"]["value"],
        env.emu.user_sys_id("agent").unwrap()
    );
    let path = format!("/api/now/table/incident/{}", r["sys_id"].as_str().unwrap());
    let resp = env
        .as_user(Method::PATCH, &path, "agent", "pw")
        .json(&json!({"state": "2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Deleting is for admins.
    let resp = env
        .as_user(Method::DELETE, &path, "agent", "pw")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        body(resp).await,
        error(
            "Operation Failed",
            Some("ACL Exception Delete Failed due to security constraints")
        )
    );
}

#[tokio::test]
async fn s1_6_read_only_role_gets_403_acl_on_insert_and_update() {
    let env = start_with(users_config()).await;
    let r = env.create_incident(json!({"short_description": "x"})).await;
    let path = format!("/api/now/table/incident/{}", r["sys_id"].as_str().unwrap());
    let list = env
        .as_user(Method::GET, "/api/now/table/incident", "reader", "pw")
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    assert_eq!(body(list).await["result"].as_array().unwrap().len(), 1);
    let resp = env
        .as_user(Method::POST, "/api/now/table/incident", "reader", "pw")
        .json(&json!({"short_description": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":{"message":"Operation Failed","detail":"ACL Exception Insert Failed due to security constraints"},"status":"failure"}"#
    );
    let resp = env
        .as_user(Method::PATCH, &path, "reader", "pw")
        .json(&json!({"state": "2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        body(resp).await,
        error(
            "Operation Failed",
            Some("ACL Exception Update Failed due to security constraints")
        )
    );
    assert_eq!(env.emu.records("incident").len(), 1);
    assert_eq!(env.emu.records("incident")[0]["state"], "1");
}

#[tokio::test]
async fn s6_user_without_incident_roles_cannot_write_or_query() {
    let env = start_with(users_config()).await;
    let resp = env
        .as_user(Method::POST, "/api/now/table/incident", "nobody", "pw")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        body(resp).await["error"]["detail"],
        "ACL Exception Insert Failed due to security constraints"
    );
    let resp = env
        .as_user(Method::GET, "/api/now/table/incident", "nobody", "pw")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[tokio::test]
async fn s4_sys_choice_needs_personalize_choices() {
    let env = start_with(users_config()).await;
    let path = "/api/now/table/sys_choice?sysparm_query=name=incident^element=state";
    let resp = env
        .as_user(Method::GET, path, "agent", "pw")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        body(resp).await,
        error("Insufficient rights to query records", None)
    );
    for (u, p) in [("chooser", "pw"), ("admin", "admin")] {
        let resp = env.as_user(Method::GET, path, u, p).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{u}");
        assert_eq!(body(resp).await["result"].as_array().unwrap().len(), 6);
    }
}

#[tokio::test]
async fn s5_rate_limit_429_with_headers_and_documented_body() {
    let limited = User::new("bot", "pw", &["itil"]).with_rate_limit(None, Some(3));
    let env = start_with(EmulatorConfig {
        users: vec![limited],
        ..Default::default()
    })
    .await;
    let mut ok_headers = None;
    for _ in 0..3 {
        let resp = env
            .as_user(Method::GET, "/api/now/table/incident", "bot", "pw")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        ok_headers = Some(resp.headers().clone());
    }
    let ok_headers = ok_headers.unwrap();
    assert_eq!(ok_headers["x-ratelimit-limit"], "3");
    assert!(ok_headers.contains_key("x-ratelimit-reset"));
    let resp = env
        .as_user(Method::GET, "/api/now/table/incident", "bot", "pw")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let h = resp.headers().clone();
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry));
    assert_eq!(h["x-ratelimit-limit"], "3");
    assert_eq!(h["x-ratelimit-rule"], ok_headers["x-ratelimit-rule"]);
    let reset: i64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
    assert!(reset > chrono::Utc::now().timestamp() - 1);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":{"message":"Rate limit exceeded","detail":"Rate limit of 3 requests per hour for Table API exceeded"},"status":"failure"}"#
    );
}

#[tokio::test]
async fn s5_per_second_rate_limit_and_no_headers_without_a_rule() {
    let env = start_with(EmulatorConfig {
        users: vec![
            "fast:pw:itil:1/s".parse().unwrap(),
            "free:pw:itil".parse().unwrap(),
        ],
        ..Default::default()
    })
    .await;
    // Two requests inside one second: the second is refused, unless the clock ticked
    // between them, in which case the third is. Poll, do not sleep.
    let mut saw_429 = false;
    for _ in 0..50 {
        let resp = env
            .as_user(Method::GET, "/api/now/table/incident", "fast", "pw")
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            assert_eq!(resp.headers()["retry-after"], "1");
            assert!(body(resp).await["error"]["detail"]
                .as_str()
                .unwrap()
                .contains("per second"));
            saw_429 = true;
            break;
        }
    }
    assert!(saw_429);
    let resp = env
        .as_user(Method::GET, "/api/now/table/incident", "free", "pw")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(!resp.headers().contains_key("x-ratelimit-limit"));
}
