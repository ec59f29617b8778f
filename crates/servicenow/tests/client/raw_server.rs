//! Answers the emulator does not give (hibernating instance, cancelled transaction, huge
//! bodies, redirects) and the exact request headers, from a tiny in-test server.

use std::sync::{Arc, Mutex};

use crate::common::*;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use snowbound_servicenow::{Failure, MAX_LOGGED_BODY_BYTES};

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
}

/// Serves `answer` to every request on 127.0.0.1 and records what arrived.
async fn serve(
    answer: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().fallback(any(
        move |method: axum::http::Method, uri: Uri, headers: HeaderMap| {
            let log = log.clone();
            let answer = answer.clone();
            async move {
                log.lock().unwrap().push(Seen {
                    method: method.to_string(),
                    uri: uri.to_string(),
                    headers,
                });
                answer()
            }
        },
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn json(status: StatusCode, body: &'static str) -> axum::response::Response {
    (
        status,
        [("content-type", "application/json;charset=UTF-8")],
        body,
    )
        .into_response()
}

#[tokio::test]
async fn requests_carry_basic_auth_and_json_headers() {
    let (url, seen) = serve(|| {
        json(
            StatusCode::CREATED,
            r#"{"result":{"sys_id":"abc","number":"INC0000001"}}"#,
        )
    })
    .await;
    let conn = connection(&url, "bot", "pw", "incident");
    client()
        .create(&conn, &new_incident("inc-headers"))
        .await
        .outcome
        .unwrap();
    client()
        .find_by_correlation_id(&conn, "inc-headers")
        .await
        .outcome
        .ok();

    let seen = seen.lock().unwrap().clone();
    let post = &seen[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.headers["accept"], "application/json");
    assert_eq!(post.headers["content-type"], "application/json");
    // base64("bot:pw")
    assert_eq!(post.headers["authorization"], "Basic Ym90OnB3");
    assert!(post.uri.contains("sysparm_exclude_reference_link=true"));
    let get = &seen[1];
    assert_eq!(get.method, "GET");
    assert_eq!(get.headers["authorization"], "Basic Ym90OnB3");
    assert_eq!(get.headers["accept"], "application/json");
    assert!(get.uri.contains("sysparm_exclude_reference_link=true"));
}

#[tokio::test]
async fn an_html_page_is_ambiguous_after_a_create_and_harmless_after_a_read() {
    let (url, _) = serve(|| {
        (
            StatusCode::OK,
            [("content-type", "text/html;charset=UTF-8")],
            "<html><body><h1>Your instance is hibernating</h1>Want to find out why instances hibernate?</body></html>",
        )
            .into_response()
    })
    .await;
    let conn = connection(&url, "bot", "pw", "incident");
    let exchange = client().create(&conn, &new_incident("inc-html")).await;
    let failure = exchange.outcome.unwrap_err();
    // Whatever answered may have passed the create on: look up before creating again.
    let Failure::Transient { ambiguous, message } = &failure else {
        panic!("{failure:?}");
    };
    assert!(ambiguous);
    assert!(message.contains("HTTP 200"), "{message}");
    assert!(message.contains("hibernating"), "{message}");
    assert_eq!(exchange.calls[0].status, Some(200));
    let lookup = client().find_by_correlation_id(&conn, "inc-html").await;
    assert!(
        matches!(
            &lookup.outcome,
            Err(Failure::Transient {
                ambiguous: false,
                ..
            })
        ),
        "{:?}",
        lookup.outcome
    );

    let (report, _) = client().test_connection(&conn).await;
    assert!(!report.ok);
    assert!(!report.checks[0].ok, "{report:#?}");
    assert!(report.checks[0].detail.contains("HTML"), "{report:#?}");
}

#[tokio::test]
async fn cancelled_transaction_appended_to_a_200_is_transient() {
    let (url, _) = serve(|| {
        json(
            StatusCode::OK,
            r#"{"result":[{"sys_id":"a"}]}{"error":{"message":"Transaction cancelled: maximum execution time exceeded","detail":"Transaction cancelled: maximum execution time exceeded Check logs for error trace or enable glide.rest.debug property to verify REST request processing"},"status":"failure"}"#,
        )
    })
    .await;
    let conn = connection(&url, "bot", "pw", "incident");
    let failure = client()
        .find_by_correlation_id(&conn, "inc-cancelled")
        .await
        .outcome
        .unwrap_err();
    assert!(
        matches!(&failure, Failure::Transient { ambiguous: false, message } if message.contains("cancelled")),
        "{failure:?}"
    );
}

#[tokio::test]
async fn huge_answers_are_cut_in_the_api_call_log() {
    let (url, _) = serve(|| {
        let body = format!("<html>{}</html>", "é".repeat(MAX_LOGGED_BODY_BYTES));
        (StatusCode::BAD_GATEWAY, body).into_response()
    })
    .await;
    let conn = connection(&url, "bot", "pw", "incident");
    let exchange = client().create(&conn, &new_incident("inc-huge")).await;
    let failure = exchange.outcome.unwrap_err();
    assert!(failure.is_ambiguous(), "a 502 to a POST: {failure:?}");
    let message = failure.to_string();
    assert!(
        message.contains("502") && message.contains("<html>"),
        "{message}"
    );
    assert!(message.len() < 1000);
    let logged = exchange.calls[0].response_body.as_deref().unwrap();
    assert!(logged.len() <= MAX_LOGGED_BODY_BYTES);
    assert!(logged.len() > MAX_LOGGED_BODY_BYTES - 4);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (url, seen) = serve(|| {
        (
            StatusCode::FOUND,
            [("location", "https://login.example.com/sso")],
        )
            .into_response()
    })
    .await;
    let conn = connection(&url, "bot", "pw", "incident");
    let failure = client()
        .create(&conn, &new_incident("inc-redirect"))
        .await
        .outcome
        .unwrap_err();
    // After a write, a redirect is not ServiceNow's answer: ambiguous, and it says where.
    assert!(
        matches!(&failure, Failure::Transient { ambiguous: true, message } if message.contains("login.example.com")),
        "{failure:?}"
    );
    let failure = client()
        .find_by_correlation_id(&conn, "inc-redirect")
        .await
        .outcome
        .unwrap_err();
    assert!(
        matches!(&failure, Failure::Rejected { status: 302, message, .. } if message.contains("login.example.com")),
        "{failure:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 2);
}
