use super::*;

fn answer(status: u16, body: &str) -> Answer<'_> {
    Answer {
        status,
        retry_after: None,
        location: None,
        content_type: Some("application/json;charset=UTF-8"),
        body: body.as_bytes(),
    }
}

const DATA_POLICY: &str = r#"{"error":{"message":"Operation Failed","detail":"Data Policy Exception: \n\tThe following fields are mandatory: Resolution code, Close notes"},"status":"failure"}"#;
const ACL_INSERT: &str = r#"{"error":{"message":"Operation Failed","detail":"ACL Exception Insert Failed due to security constraints"},"status":"failure"}"#;
const UNAUTHENTICATED: &str = r#"{"error":{"message":"User Not Authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#;
const RATE_LIMITED: &str = r#"{"error":{"message":"Rate limit exceeded","detail":"Rate limit of 100 requests per hour for Table API exceeded"},"status":"failure"}"#;

#[test]
fn success_returns_the_result() {
    let result = classify_answer(true, &answer(201, r#"{"result":{"sys_id":"abc"}}"#)).unwrap();
    assert_eq!(result["sys_id"], "abc");
}

#[test]
fn unauthorized_keeps_servicenow_words() {
    let failure = classify_answer(false, &answer(401, UNAUTHENTICATED)).unwrap_err();
    assert_eq!(
        failure,
        Failure::Unauthorized {
            message: "HTTP 401: User Not Authenticated: Required to provide Auth information"
                .into(),
            cause: AuthRefusal::BasicCredentials,
        }
    );
    assert!(failure
        .user_message("incident")
        .contains("username or password"));
}

#[test]
fn each_refusal_of_the_credentials_says_what_to_do() {
    let restricted = r#"{"error":{"message":"User is not authenticated","detail":"Required to provide Auth information"},"status":"failure"}"#;
    let failure = classify_answer(false, &answer(401, restricted)).unwrap_err();
    let text = failure.user_message("incident");
    for words in [
        "Web service access only",
        "snc_basic_auth_api_access",
        "OAuth",
    ] {
        assert!(text.contains(words), "{text}");
    }
    let policy = r#"{"error":{"message":"User Not Authenticated","detail":"Token Based Auth isn't allowed in the Global REST API Policy"},"status":"failure"}"#;
    let failure = classify_answer(false, &answer(401, policy))
        .unwrap_err()
        .for_auth(AuthKind::ApiKey);
    assert!(matches!(
        failure,
        Failure::Unauthorized {
            cause: AuthRefusal::ApiKey { policy: true },
            ..
        }
    ));
    assert!(failure
        .user_message("incident")
        .contains("REST API Access Policy"));
    let bearer = classify_answer(false, &answer(401, UNAUTHENTICATED))
        .unwrap_err()
        .for_auth(AuthKind::OAuthPassword);
    assert!(matches!(
        bearer,
        Failure::Unauthorized {
            cause: AuthRefusal::BearerToken,
            ..
        }
    ));
    let grant = Failure::Unauthorized {
        message: String::new(),
        cause: AuthRefusal::GrantNotEnabled {
            client_credentials: true,
        },
    };
    assert!(grant
        .user_message("incident")
        .contains("glide.oauth.inbound.client.credential.grant_type.enabled"));
}

#[test]
fn invalid_table_is_rejected_with_null_detail() {
    let body = r#"{"error":{"message":"Invalid table nope","detail":null},"status":"failure"}"#;
    let failure = classify_answer(false, &answer(400, body)).unwrap_err();
    assert_eq!(
        failure,
        Failure::Rejected {
            status: 400,
            message: "Invalid table nope".into(),
            detail: None
        }
    );
    assert!(failure.user_message("nope").contains("does not exist"));
}

#[test]
fn data_policy_names_the_mandatory_fields() {
    let failure = classify_answer(true, &answer(403, DATA_POLICY)).unwrap_err();
    let Failure::Rejected {
        status,
        message,
        detail,
    } = &failure
    else {
        panic!("{failure:?}");
    };
    assert_eq!((*status, message.as_str()), (403, "Operation Failed"));
    assert!(detail
        .as_deref()
        .unwrap()
        .contains("Resolution code, Close notes"));
    let text = failure.user_message("incident");
    assert!(
        text.contains("mandatory: Resolution code, Close notes."),
        "{text}"
    );
    // Display stays on one line for logs.
    assert!(!failure.to_string().contains('\n'));
}

#[test]
fn acl_insert_explains_the_missing_create_right() {
    let failure = classify_answer(true, &answer(403, ACL_INSERT)).unwrap_err();
    assert_eq!(
        failure.user_message("incident"),
        "ServiceNow refused to create the record: the integration user lacks create rights on \
         table incident (ACL). Ask the ServiceNow admin for the itil role or a create ACL."
    );
}

#[test]
fn missing_record_on_update_is_rejected() {
    let body = r#"{"error":{"message":"No Record found","detail":"Record doesn't exist or ACL restricts the record retrieval"},"status":"failure"}"#;
    let failure = classify_answer(true, &answer(404, body)).unwrap_err();
    assert_eq!(failure.status(), Some(404));
    assert!(!failure.is_ambiguous());
    assert!(failure.user_message("incident").contains("not found"));
}

#[test]
fn other_client_errors_are_rejected() {
    for status in [400, 403, 404, 405, 406, 415, 422] {
        let failure = classify_answer(false, &answer(status, "{}")).unwrap_err();
        assert!(
            matches!(failure, Failure::Rejected { status: s, .. } if s == status),
            "{status}: {failure:?}"
        );
    }
}

#[test]
fn rate_limit_reads_retry_after_seconds() {
    let mut a = answer(429, RATE_LIMITED);
    a.retry_after = Some("37");
    let failure = classify_answer(true, &a).unwrap_err();
    assert_eq!(
        failure,
        Failure::RateLimited {
            retry_after: Some(Duration::from_secs(37)),
            message:
                "Rate limit exceeded: Rate limit of 100 requests per hour for Table API exceeded"
                    .into()
        }
    );
    assert!(failure.user_message("incident").contains("37 s"));
}

#[test]
fn rate_limit_without_header_or_body_has_no_duration() {
    let failure = classify_answer(false, &answer(429, "")).unwrap_err();
    assert!(matches!(
        failure,
        Failure::RateLimited {
            retry_after: None,
            ..
        }
    ));
}

#[test]
fn retry_after_parsing() {
    let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    assert_eq!(
        parse_retry_after("120", now),
        Some(Duration::from_secs(120))
    );
    assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after("Thu, 01 Jan 2026 00:01:30 GMT", now),
        Some(Duration::from_secs(90))
    );
    // A date in the past means "now", not an error.
    assert_eq!(
        parse_retry_after("Wed, 31 Dec 2025 23:00:00 GMT", now),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("-5", now), None);
    assert_eq!(parse_retry_after("soon", now), None);
}

#[test]
fn server_errors_are_ambiguous_only_for_writes() {
    let body = r#"{"error":{"message":"Internal error","detail":null},"status":"failure"}"#;
    let post = classify_answer(true, &answer(503, body)).unwrap_err();
    assert!(post.is_ambiguous(), "{post:?}");
    assert!(post.to_string().contains("503"));
    let get = classify_answer(false, &answer(500, body)).unwrap_err();
    assert!(matches!(
        get,
        Failure::Transient {
            ambiguous: false,
            ..
        }
    ));
}

#[test]
fn hibernating_instance_html_to_a_read_is_transient_and_not_applied() {
    let html = "<html><head><title>Instance Hibernating</title></head><body>Want to find out why instances hibernate?</body></html>";
    let mut a = answer(200, html);
    a.content_type = Some("text/html;charset=UTF-8");
    let failure = classify_answer(false, &a).unwrap_err();
    let Failure::Transient { ambiguous, message } = &failure else {
        panic!("{failure:?}");
    };
    assert!(!ambiguous);
    assert!(message.contains("HTTP 200"), "{message}");
    assert!(message.contains("hibernat"), "{message}");
    assert!(message.contains("Want to find out"), "{message}");
}

/// A proxy, WAF or SSO page in front of the instance may have passed the write on before
/// answering with its own page: only a lookup tells.
#[test]
fn any_answer_to_a_write_that_is_not_servicenows_json_is_ambiguous() {
    let page = "<html><body>Access gateway: session checked</body></html>";
    for status in [200, 201, 204, 302, 400, 401, 403, 404, 429, 502] {
        for content_type in ["text/html", "application/json"] {
            let mut a = answer(status, page);
            a.content_type = Some(content_type);
            let failure = classify_answer(true, &a).unwrap_err();
            assert!(
                failure.is_ambiguous(),
                "{status} {content_type}: {failure:?}"
            );
        }
        let mut empty = answer(status, "");
        empty.content_type = None;
        assert!(
            classify_answer(true, &empty).unwrap_err().is_ambiguous(),
            "{status} empty"
        );
    }
    // JSON that is not the Table API's envelope is not ServiceNow's either.
    assert!(classify_answer(true, &answer(403, r#"{"blocked":true}"#))
        .unwrap_err()
        .is_ambiguous());
    // ServiceNow's own refusals still mean what they say…
    assert!(matches!(
        classify_answer(true, &answer(403, DATA_POLICY)).unwrap_err(),
        Failure::Rejected { status: 403, .. }
    ));
    assert!(matches!(
        classify_answer(true, &answer(401, UNAUTHENTICATED)).unwrap_err(),
        Failure::Unauthorized { .. }
    ));
    // …and a 408 means the request never ran, whoever sent it.
    assert!(!classify_answer(true, &answer(408, page))
        .unwrap_err()
        .is_ambiguous());
}

#[test]
fn non_json_success_to_a_write_is_ambiguous() {
    let mut a = answer(201, "created, probably");
    a.content_type = Some("text/plain");
    let failure = classify_answer(true, &a).unwrap_err();
    assert!(failure.is_ambiguous());
    assert!(failure.to_string().contains("created, probably"));
    assert!(!classify_answer(false, &a).unwrap_err().is_ambiguous());
}

#[test]
fn cancelled_transaction_appended_to_a_200_is_transient() {
    let body = r#"{"result":[{"sys_id":"a"}]}{"error":{"message":"Transaction cancelled: maximum execution time exceeded","detail":"Transaction cancelled: maximum execution time exceeded Check logs for error trace or enable glide.rest.debug property to verify REST request processing"},"status":"failure"}"#;
    let failure = classify_answer(false, &answer(200, body)).unwrap_err();
    assert!(matches!(
        failure,
        Failure::Transient {
            ambiguous: false,
            ..
        }
    ));
    assert!(failure.to_string().contains("cancelled"));
    assert!(classify_answer(true, &answer(200, body))
        .unwrap_err()
        .is_ambiguous());
}

#[test]
fn cancelled_words_inside_a_record_are_just_data() {
    let body =
        r#"{"result":{"sys_id":"a","short_description":"Transaction cancelled in payments"}}"#;
    assert!(classify_answer(true, &answer(201, body)).is_ok());
}

#[test]
fn success_without_result_is_unexpected() {
    let failure = classify_answer(true, &answer(200, r#"{"records":[]}"#)).unwrap_err();
    assert!(failure.is_ambiguous());
    assert!(failure.to_string().contains("unexpected JSON"));
}

#[test]
fn unexpected_error_bodies_show_status_and_first_bytes() {
    let body = format!("<html>Bad Gateway {}</html>", "x".repeat(1000));
    let failure = classify_answer(false, &answer(418, &body)).unwrap_err();
    let text = failure.to_string();
    assert!(text.contains("HTTP 418"), "{text}");
    assert!(text.contains("<html>Bad Gateway"), "{text}");
    assert!(text.len() < 400, "{text}");
}

#[test]
fn redirects_are_rejected_with_the_target() {
    let mut a = answer(302, "");
    a.location = Some("https://login.example.com/sso");
    let failure = classify_answer(false, &a).unwrap_err();
    assert!(failure
        .to_string()
        .contains("https://login.example.com/sso"));
    assert!(matches!(failure, Failure::Rejected { status: 302, .. }));
    // To a write the same answer is ambiguous (see above), and still says where it led.
    let failure = classify_answer(true, &a).unwrap_err();
    assert!(failure.is_ambiguous());
    assert!(failure
        .to_string()
        .contains("https://login.example.com/sso"));
}

#[test]
fn envelope_parsing_is_lenient() {
    assert_eq!(
        parse_envelope(br#"{"error":{"message":"m","detail":""}}"#),
        Some(("m".into(), None))
    );
    assert_eq!(
        parse_envelope(br#"{"error":{"message":"m","detail":{"x":1}}}"#),
        Some(("m".into(), Some(r#"{"x":1}"#.into())))
    );
    assert_eq!(
        parse_envelope(br#"{"error":"plain"}"#),
        Some(("plain".into(), None))
    );
    assert_eq!(parse_envelope(b"not json"), None);
    assert_eq!(parse_envelope(br#"{"result":{}}"#), None);
}

#[test]
fn mandatory_field_extraction() {
    assert_eq!(
        mandatory_fields(
            "Data Policy Exception: \n\tThe following fields are mandatory: Resolution code"
        ),
        Some("Resolution code".into())
    );
    assert_eq!(
        mandatory_fields("Data Policy Exception: something else"),
        None
    );
}

#[test]
fn transport_errors_before_sending_are_never_ambiguous() {
    for write in [true, false] {
        let failure = classify_transport(write, TransportKind::Connect, "connection refused");
        assert!(!failure.is_ambiguous());
        assert!(failure.to_string().contains("connection refused"));
    }
}

#[test]
fn transport_errors_after_sending_are_ambiguous_for_writes_only() {
    for kind in [
        TransportKind::Timeout,
        TransportKind::Interrupted,
        TransportKind::Body,
    ] {
        assert!(
            classify_transport(true, kind, "e").is_ambiguous(),
            "{kind:?}"
        );
        assert!(
            !classify_transport(false, kind, "e").is_ambiguous(),
            "{kind:?}"
        );
    }
}

#[test]
fn local_refusal_reads_as_such() {
    let failure = Failure::Rejected {
        status: 0,
        message: "invalid table name \"a^b\"".into(),
        detail: None,
    };
    assert_eq!(failure.status(), None);
    assert!(failure
        .to_string()
        .starts_with("Snowbound did not send the request"));
}
