//! Auth, the JSON error shape and bad input: always a 4xx naming the field, never a 500,
//! and nothing stored half-way.

use reqwest::Method;
use serde_json::json;

use crate::{start, ADMIN_TOKEN};

#[tokio::test]
async fn healthz_answers_without_auth() {
    let server = start().await;
    let answer = server
        .send(server.request(Method::GET, "/healthz", None))
        .await;
    assert_eq!(answer.status, 200, "{answer:?}");
}

#[tokio::test]
async fn missing_or_wrong_token_is_a_json_401() {
    let server = start().await;
    for token in [None, Some("wrong"), Some("")] {
        let answer = server
            .send(server.request(Method::GET, "/api/v1/incidents", token))
            .await;
        assert_eq!(answer.status, 401, "{answer:?}");
        assert_eq!(answer.code(), "unauthorized");
        assert!(answer.body["error"]["message"].is_string());
    }
    let basic = server
        .http
        .get(format!("{}/api/v1/teams", server.base))
        .basic_auth("admin", Some(ADMIN_TOKEN));
    assert_eq!(server.send(basic).await.status, 401);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let server = start().await;
    let answer = server.try_get("/api/v1/nothing-here").await;
    assert_eq!((answer.status, answer.code()), (404, "not_found"));
    let answer = server.try_get("/api/v2/teams").await;
    assert_eq!((answer.status, answer.code()), (404, "not_found"));
    let answer = server
        .call_as(Method::PUT, "/api/v1/teams", ADMIN_TOKEN, None)
        .await;
    assert_eq!(answer.status, 405, "{answer:?}");
    assert_eq!(answer.code(), "method_not_allowed");
    let answer = server.try_get("/api/v1/incidents/not-a-uuid").await;
    assert_eq!(answer.status, 404, "{answer:?}");
}

#[tokio::test]
async fn malformed_json_and_wrong_content_type_are_refused() {
    let server = start().await;
    let url = format!("{}/api/v1/teams", server.base);
    let malformed = server
        .http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"name\": ");
    let answer = server.send(malformed).await;
    assert_eq!(
        (answer.status, answer.code()),
        (400, "invalid_json"),
        "{answer:?}"
    );

    let trailing = server
        .http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"name\": \"a\"} x");
    assert_eq!(server.send(trailing).await.status, 400);

    let text = server
        .http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/plain")
        .body("{\"name\": \"ops\"}");
    let answer = server.send(text).await;
    assert_eq!(answer.status, 415, "{answer:?}");
    assert_eq!(answer.code(), "unsupported_media_type");
    assert_eq!(server.try_get("/api/v1/teams").await.body, json!([]));
}

#[tokio::test]
async fn bodies_over_one_mib_are_413_and_store_nothing() {
    let server = start().await;
    let team = server.team("ops").await;
    let body = json!({"team_id": team, "title": "big", "severity": "minor",
                      "description": "x".repeat(1024 * 1024)});
    let answer = server.try_post("/api/v1/incidents", body).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(answer.code(), "payload_too_large");

    // Without a Content-Length the limit hits while the body streams in (chunked).
    let status = chunked_post(&server.base, "/api/v1/incidents", 20 * 64 * 1024).await;
    assert_eq!(status, 413);
    assert_eq!(server.try_get("/api/v1/incidents").await.body, json!([]));
}

/// reqwest (without its `stream` feature) always sends a Content-Length, so this speaks
/// HTTP/1.1 by hand. Returns the status line's code.
async fn chunked_post(base: &str, path: &str, size: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < size {
        // The server may answer and close before everything is sent.
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&framed).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.contains("application/json"), "{answer}");
    answer.split(' ').nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn each_bad_incident_field_is_named_and_nothing_is_stored() {
    let server = start().await;
    let team = server.team("ops").await;
    let other = uuid::Uuid::now_v7();
    let cases = [
        (
            json!({"team_id": team, "title": "t", "severity": "urgent"}),
            "severity",
        ),
        (json!({"team_id": team, "severity": "minor"}), "title"),
        (
            json!({"team_id": team, "title": "  ", "severity": "minor"}),
            "title",
        ),
        (
            json!({"team_id": other, "title": "t", "severity": "minor"}),
            "team_id",
        ),
        (
            json!({"team_id": "nope", "title": "t", "severity": "minor"}),
            "team_id",
        ),
        (
            json!({"team_id": team, "title": "t", "severity": "minor", "titel": "x"}),
            "titel",
        ),
        (
            json!({"team_id": team, "title": 5, "severity": "minor"}),
            "title",
        ),
        (
            json!({"team_id": team, "title": "t", "severity": "minor", "attributes": {"a": 1}}),
            "attributes.a",
        ),
    ];
    for (body, field) in cases {
        let answer = server.try_post("/api/v1/incidents", body.clone()).await;
        assert!((400..500).contains(&answer.status), "{body} → {answer:?}");
        assert_eq!(answer.field(), field, "{body} → {answer:?}");
    }
    assert_eq!(server.try_get("/api/v1/incidents").await.body, json!([]));
}

#[tokio::test]
async fn query_parameters_are_checked() {
    let server = start().await;
    let answer = server.try_get("/api/v1/incidents?status=closed").await;
    assert_eq!(
        (answer.status, answer.field()),
        (422, "status"),
        "{answer:?}"
    );
    let answer = server.try_get("/api/v1/incidents?sevrity=minor").await;
    assert_eq!(
        (answer.status, answer.field()),
        (422, "sevrity"),
        "{answer:?}"
    );
}

#[tokio::test]
async fn teams_and_tokens() {
    let server = start().await;
    let ops = server.team("ops").await;
    let answer = server.try_post("/api/v1/teams", json!({"name": " "})).await;
    assert_eq!((answer.status, answer.field()), (422, "name"));
    let answer = server
        .try_post(
            "/api/v1/tokens",
            json!({"name": "bot", "team_ids": [uuid::Uuid::now_v7()]}),
        )
        .await;
    assert_eq!((answer.status, answer.field()), (422, "team_ids"));

    let token = server.token("ops-bot", &[ops]).await;
    assert!(token.starts_with("sbt_"));
    let answer = server
        .call_as(
            Method::POST,
            "/api/v1/teams",
            &token,
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!((answer.status, answer.code()), (403, "forbidden"));
    let db = server.team("db").await;
    let answer = server
        .call_as(Method::GET, "/api/v1/teams", &token, None)
        .await;
    assert_eq!(answer.status, 200);
    let seen: Vec<&str> = answer
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["ops"]);
    let _ = db;
}
