//! Hostile and careless input gets a clear 4xx JSON answer naming what is wrong —
//! never a 500, a panic or a half-stored incident — and odd but valid text is kept
//! exactly as sent.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{TestApp, ADMIN_TOKEN};

async fn raw(t: &TestApp, method: Method, path: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let response = t
        .http
        .request(method, format!("{}{path}", t.base))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
    (status, body)
}

fn assert_json_error(status: StatusCode, body: &Value) {
    assert!(status.is_client_error(), "{status}: {body}");
    assert!(
        body["error"]["code"].is_string() && body["error"]["message"].is_string(),
        "{body}"
    );
}

async fn incident_count(t: &TestApp) -> usize {
    t.get("/api/v1/incidents").await.as_array().unwrap().len()
}

#[tokio::test]
async fn broken_bodies_are_refused_with_json_and_store_nothing() {
    let t = TestApp::spawn().await;
    let team = t.team("core").await;
    let valid = format!(r#"{{"team_id":"{team}","title":"ok","severity":"critical"}}"#);
    let truncated = valid.as_bytes()[..valid.len() - 5].to_vec();
    let mut not_utf8 = valid.clone().into_bytes();
    not_utf8.splice(30..30, [0xff, 0xfe, 0xc3]);
    let deep = format!(
        r#"{{"team_id":"{team}","title":"x","severity":"minor","attributes":{}1{}}}"#,
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let null_byte =
        format!(r#"{{"team_id":"{team}","title":"a\u0000b","severity":"critical","extra":1}}"#);

    for (name, body) in [
        ("truncated", truncated),
        ("not UTF-8", not_utf8),
        ("deeply nested", deep.into_bytes()),
        ("unknown field", null_byte.into_bytes()),
        ("array", b"[1,2,3]".to_vec()),
        ("empty", Vec::new()),
        (
            "wrong types",
            format!(r#"{{"team_id":"{team}","title":42,"severity":["critical"]}}"#).into_bytes(),
        ),
    ] {
        let (status, body) = raw(&t, Method::POST, "/api/v1/incidents", body).await;
        assert_json_error(status, &body);
        println!("{name}: {status} {}", body["error"]["message"]);
    }
    assert_eq!(incident_count(&t).await, 0, "nothing stored half-way");
}

#[tokio::test]
async fn unicode_and_control_characters_are_kept_verbatim_and_reach_servicenow() {
    let t = TestApp::spawn().await;
    let team = t.team("core").await;
    t.integration(&team, "always", json!({})).await;
    let title = "💥 Zürich DB down\t<script>alert(1)</script> \u{7} \"quoted\" & 'single' ﷽";
    let incident = t
        .post("/api/v1/incidents", json!({"team_id": team, "title": title, "severity": "critical",
                                          "description": "line 1\nline 2\r\n\u{1b}[31mred\u{1b}[0m"}))
        .await;
    let id = support::id(&incident);
    let stored = t.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(stored["title"], title);
    t.wait_synced(&id).await;
    assert_eq!(t.record(&id).unwrap()["short_description"], title);
}

#[tokio::test]
async fn path_tricks_answer_json_4xx() {
    let t = TestApp::spawn().await;
    for path in [
        "/api/v1/incidents/not-a-uuid",
        "/api/v1/incidents/..%2F..%2Fteams",
        "/api/v1/incidents/%00",
        "/api/v1/incidents/00000000-0000-0000-0000-000000000000",
        "/api/v1/integrations/00000000-0000-0000-0000-000000000000/choices?field=state",
        "/api/v1/../v1/teams/../../etc/passwd",
        "/api/v1/incidents?status=exploded",
        "/api/v1/nothing-here",
    ] {
        let (status, body) = t.call(Method::GET, path, None).await;
        assert!(status.is_client_error(), "{path}: {status} {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn titles_beyond_what_snowbound_accepts_name_the_field() {
    let t = TestApp::spawn().await;
    let team = t.team("core").await;
    let (status, body) = t
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(json!({"team_id": team, "title": "x".repeat(100_000), "severity": "critical"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "title");
    let (status, body) = t
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(json!({"team_id": team, "title": "  ", "severity": "critical"})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("title"))
    );
}
