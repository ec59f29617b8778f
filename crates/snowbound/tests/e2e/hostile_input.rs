//! Hostile and careless input gets a clear 4xx JSON answer naming what is wrong —
//! never a 500, a panic or a half-stored incident — and odd but valid text is kept
//! exactly as sent.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use snowbound_testkit::Backend;
use snowbound_testkit::{TestApp, ADMIN_TOKEN};

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
    let t = TestApp::spawn(Backend::Sqlite).await;
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
    let t = TestApp::spawn(Backend::Sqlite).await;
    let team = t.team("core").await;
    t.integration(team, "always", json!({})).await;
    let title = "💥 Zürich DB down\t<script>alert(1)</script> \u{7} \"quoted\" & 'single' ﷽";
    let incident = t
        .post("/api/v1/incidents", json!({"team_id": team, "title": title, "severity": "critical",
                                          "description": "line 1\nline 2\r\n\u{1b}[31mred\u{1b}[0m"}))
        .await;
    let id = snowbound_testkit::id(&incident);
    let stored = t.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(stored["title"], title);
    t.wait_synced(id).await;
    assert_eq!(t.record(id).unwrap()["short_description"], title);
}

#[tokio::test]
async fn path_tricks_answer_json_4xx() {
    let t = TestApp::spawn(Backend::Sqlite).await;
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
        let (status, body) = t.call(Method::GET, path, None).await.parts();
        assert!(status.is_client_error(), "{path}: {status} {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn titles_beyond_what_snowbound_accepts_name_the_field() {
    let t = TestApp::spawn(Backend::Sqlite).await;
    let team = t.team("core").await;
    let (status, body) = t
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(json!({"team_id": team, "title": "x".repeat(100_000), "severity": "critical"})),
        )
        .await
        .parts();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "title");
    let (status, body) = t
        .call(
            Method::POST,
            "/api/v1/incidents",
            Some(json!({"team_id": team, "title": "  ", "severity": "critical"})),
        )
        .await
        .parts();
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("title"))
    );
}

/// What each API write answers for `value` in one string field: (path, body, field).
async fn refused_fields(t: &TestApp, bad: &str) -> Vec<(String, StatusCode, Value)> {
    let team = t.team("core").await;
    let incident = t.incident(team, "ok", "minor").await;
    let integration = t
        .integration(team, "always_after_forwarding", json!({}))
        .await;
    let rule = |extra: Value| {
        let mut body = json!({"team_id": team, "name": "r", "then": {"forward_to": [integration]}});
        snowbound_testkit::merge(&mut body, extra);
        body
    };
    let source = |extra: Value| {
        let mut body = json!({"team_id": team, "type": "webhook", "name": "s"});
        snowbound_testkit::merge(&mut body, extra);
        body
    };
    let incident_body = |extra: Value| {
        let mut body = json!({"team_id": team, "title": "t", "severity": "minor"});
        snowbound_testkit::merge(&mut body, extra);
        body
    };
    let source_id = snowbound_testkit::id(&t.post("/api/v1/sources", source(json!({}))).await);
    let cases: Vec<(Method, String, Value, &str)> = vec![
        (
            Method::POST,
            "/api/v1/incidents".into(),
            incident_body(json!({"title": bad})),
            "title",
        ),
        (
            Method::POST,
            "/api/v1/incidents".into(),
            incident_body(json!({"description": bad})),
            "description",
        ),
        (
            Method::POST,
            "/api/v1/incidents".into(),
            incident_body(json!({"attributes": {"host": bad}})),
            "attributes.host",
        ),
        (
            Method::POST,
            "/api/v1/incidents".into(),
            incident_body(json!({"attributes": {bad: "v"}})),
            "attributes",
        ),
        (
            Method::PATCH,
            format!("/api/v1/incidents/{incident}"),
            json!({"title": bad}),
            "title",
        ),
        (
            Method::PATCH,
            format!("/api/v1/incidents/{incident}"),
            json!({"description": bad}),
            "description",
        ),
        (
            Method::POST,
            format!("/api/v1/incidents/{incident}/resolve"),
            json!({"comment": bad}),
            "comment",
        ),
        (
            Method::POST,
            "/api/v1/teams".into(),
            json!({"name": bad}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            json!({"name": bad, "team_ids": [team]}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/sources".into(),
            source(json!({"name": bad})),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/sources".into(),
            source(json!({"severity_map": {bad: "critical"}})),
            "severity_map",
        ),
        (
            Method::PATCH,
            format!("/api/v1/sources/{source_id}"),
            json!({"name": bad}),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/routing-rules".into(),
            rule(json!({"name": bad})),
            "name",
        ),
        (
            Method::POST,
            "/api/v1/routing-rules".into(),
            rule(json!({"when": {"title_contains": bad}})),
            "when.title_contains",
        ),
        (
            Method::POST,
            "/api/v1/routing-rules".into(),
            rule(json!({"when": {"attributes": {"env": bad}}})),
            "when.attributes.env.equals",
        ),
        (
            Method::POST,
            "/api/v1/routing-rules".into(),
            rule(json!({"when": {"attributes": {bad: "prod"}}})),
            "when.attributes",
        ),
    ];
    let mut answers = Vec::new();
    for (method, path, body, field) in cases {
        let (status, answer) = t.call(method.clone(), &path, Some(body)).await.parts();
        answers.push((format!("{method} {path} {field}"), status, answer.clone()));
        assert_eq!(
            (status, answer["error"]["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{method} {path} ({field}): {answer}"
        );
    }
    let view = t.get(&format!("/api/v1/incidents/{incident}")).await;
    assert_eq!(
        (view["title"].as_str(), view["status"].as_str()),
        (Some("ok"), Some("open"))
    );
    assert_eq!(incident_count(t).await, 1, "no incident stored half-way");
    assert_eq!(t.get("/api/v1/sources").await.as_array().unwrap().len(), 1);
    assert_eq!(
        t.get("/api/v1/routing-rules")
            .await
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(t.get("/api/v1/teams").await.as_array().unwrap().len(), 1);
    answers
}

async fn nul_is_refused_naming_the_field(backend: Backend) {
    let t = TestApp::spawn(backend).await;
    refused_fields(&t, "bad\u{0}value").await;
}

#[tokio::test]
async fn nul_characters_are_refused_naming_the_field_on_sqlite() {
    nul_is_refused_naming_the_field(Backend::Sqlite).await;
}

#[tokio::test]
async fn nul_characters_are_refused_naming_the_field_on_postgres() {
    nul_is_refused_naming_the_field(Backend::Postgres).await;
}

#[tokio::test]
async fn overlong_strings_are_refused_naming_the_field_on_both_backends() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let t = TestApp::spawn(backend).await;
        refused_fields(&t, &"x".repeat(20_001)).await;
    }
}
