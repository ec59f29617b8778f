//! Every failure class, produced by a real HTTP exchange with the emulator.

use std::time::Duration;

use crate::common::*;
use snowbound_emulator::Fault;
use snowbound_servicenow::{AuthRefusal, Failure};

const INCIDENTS: &str = "/api/now/table/incident";

#[tokio::test]
async fn wrong_password_is_unauthorized() {
    let emu = emulator().await;
    let conn = connection(&emu.base_url(), "admin", "not-the-password", "incident");
    let exchange = client().create(&conn, &new_incident("inc-401")).await;
    let failure = exchange.outcome.unwrap_err();
    assert_eq!(
        failure,
        Failure::Unauthorized {
            message: "HTTP 401: User Not Authenticated: Required to provide Auth information"
                .into(),
            cause: AuthRefusal::BasicCredentials,
        }
    );
    assert_eq!(exchange.calls[0].status, Some(401));
    assert!(emu.records("incident").is_empty());
}

#[tokio::test]
async fn unknown_table_is_rejected_as_invalid_table() {
    let emu = emulator().await;
    let conn = connection(&emu.base_url(), "admin", "admin", "u_no_such_table");
    let failure = client()
        .create(&conn, &new_incident("inc-400"))
        .await
        .outcome
        .unwrap_err();
    assert_eq!(
        failure,
        Failure::Rejected {
            status: 400,
            message: "Invalid table u_no_such_table".into(),
            detail: None,
        }
    );
    assert!(failure
        .user_message("u_no_such_table")
        .contains("does not exist"));
}

#[tokio::test]
async fn data_policy_rejection_carries_the_detail_and_changes_nothing() {
    let emu = emulator().await;
    let conn = admin(&emu);
    let client = client();
    let created = client
        .create(&conn, &new_incident("inc-dp"))
        .await
        .outcome
        .unwrap();

    let failure = client
        .update(&conn, &created.sys_id, &fields(&[("state", "6")]))
        .await
        .outcome
        .unwrap_err();
    let Failure::Rejected {
        status,
        message,
        detail,
    } = &failure
    else {
        panic!("{failure:?}");
    };
    assert_eq!(*status, 403);
    assert_eq!(message, "Operation Failed");
    let detail = detail.as_deref().unwrap();
    assert!(detail.starts_with("Data Policy Exception"), "{detail}");
    assert!(detail.contains("Resolution code"), "{detail}");
    let sentence = failure.user_message("incident");
    assert!(
        sentence.contains("mandatory: Resolution code"),
        "{sentence}"
    );
    assert_eq!(
        emu.record("incident", &created.sys_id).unwrap()["state"],
        "1"
    );
}

#[tokio::test]
async fn read_only_user_gets_an_acl_rejection_on_create() {
    let emu = emulator_with_users(&["reader:pw:incident_reader"]).await;
    let conn = connection(&emu.base_url(), "reader", "pw", "incident");
    let failure = client()
        .create(&conn, &new_incident("inc-acl"))
        .await
        .outcome
        .unwrap_err();
    assert!(
        matches!(&failure, Failure::Rejected { status: 403, detail: Some(d), .. } if d.contains("ACL Exception Insert Failed")),
        "{failure:?}"
    );
    assert!(failure
        .user_message("incident")
        .contains("lacks create rights on table incident"));
    assert!(emu.records("incident").is_empty());
}

#[tokio::test]
async fn rate_limit_fault_gives_retry_after() {
    let emu = emulator().await;
    emu.add_fault(Fault::status("POST", INCIDENTS, 429).with_retry_after(7));
    let exchange = client()
        .create(&admin(&emu), &new_incident("inc-429"))
        .await;
    let failure = exchange.outcome.unwrap_err();
    assert!(
        matches!(&failure, Failure::RateLimited { retry_after: Some(d), .. } if *d == Duration::from_secs(7)),
        "{failure:?}"
    );
    assert!(!failure.is_ambiguous());
    assert!(emu.records("incident").is_empty());
}

#[tokio::test]
async fn a_users_rate_limit_rule_surfaces_as_rate_limited() {
    let emu = emulator_with_users(&["bot:pw:itil:1/h"]).await;
    let conn = connection(&emu.base_url(), "bot", "pw", "incident");
    let client = client();
    client
        .create(&conn, &new_incident("inc-rl-1"))
        .await
        .outcome
        .expect("first call is within the limit");
    let failure = client
        .create(&conn, &new_incident("inc-rl-2"))
        .await
        .outcome
        .unwrap_err();
    let Failure::RateLimited {
        retry_after,
        message,
    } = &failure
    else {
        panic!("{failure:?}");
    };
    assert!(retry_after.is_some());
    assert!(message.contains("Rate limit"), "{message}");
    assert_eq!(emu.records("incident").len(), 1);
}

#[tokio::test]
async fn server_error_on_post_is_ambiguous() {
    let emu = emulator().await;
    emu.add_fault(Fault::status("POST", INCIDENTS, 503));
    let failure = client()
        .create(&admin(&emu), &new_incident("inc-503"))
        .await
        .outcome
        .unwrap_err();
    assert!(failure.is_ambiguous(), "{failure:?}");
    assert!(failure.to_string().contains("503"));
}

#[tokio::test]
async fn server_error_on_get_is_not_ambiguous() {
    let emu = emulator().await;
    emu.add_fault(Fault::status("GET", INCIDENTS, 500));
    let failure = client()
        .find_by_correlation_id(&admin(&emu), "inc-500")
        .await
        .outcome
        .unwrap_err();
    assert!(
        matches!(
            failure,
            Failure::Transient {
                ambiguous: false,
                ..
            }
        ),
        "{failure:?}"
    );
}

#[tokio::test]
async fn dropped_answer_after_a_create_is_ambiguous_and_the_record_can_be_adopted() {
    let emu = emulator().await;
    emu.add_fault(Fault::drop_after_write("POST", INCIDENTS));
    let conn = admin(&emu);
    let client = client();
    let exchange = client.create(&conn, &new_incident("inc-dropped")).await;
    let failure = exchange.outcome.unwrap_err();
    assert!(failure.is_ambiguous(), "{failure:?}");
    let call = &exchange.calls[0];
    assert_eq!(call.status, None);
    assert!(call.error.is_some());

    // What the sync engine does next: look up before creating again.
    let stored = emu.records_by_correlation_id("incident", "inc-dropped");
    assert_eq!(stored.len(), 1, "the emulator applied the create");
    let adopted = client
        .find_by_correlation_id(&conn, "inc-dropped")
        .await
        .outcome
        .unwrap()
        .expect("found");
    assert_eq!(adopted.sys_id, stored[0]["sys_id"]);
}

#[tokio::test]
async fn dropped_answer_after_an_update_is_ambiguous() {
    let emu = emulator().await;
    let conn = admin(&emu);
    let client = client();
    let created = client
        .create(&conn, &new_incident("inc-drop-patch"))
        .await
        .outcome
        .unwrap();
    emu.add_fault(Fault::drop_after_write("PATCH", INCIDENTS));
    let failure = client
        .update(&conn, &created.sys_id, &fields(&[("urgency", "1")]))
        .await
        .outcome
        .unwrap_err();
    assert!(failure.is_ambiguous(), "{failure:?}");
}

#[tokio::test]
async fn hang_past_the_request_timeout_is_an_ambiguous_timeout_for_post() {
    let emu = emulator().await;
    emu.add_fault(Fault::hang("POST", INCIDENTS));
    let exchange = impatient_client()
        .create(&admin(&emu), &new_incident("inc-hang"))
        .await;
    let failure = exchange.outcome.unwrap_err();
    assert!(failure.is_ambiguous(), "{failure:?}");
    assert!(
        failure.to_string().contains("did not answer in time"),
        "{failure}"
    );
    assert_eq!(exchange.calls[0].status, None);
}

#[tokio::test]
async fn hang_on_a_get_is_a_timeout_but_not_ambiguous() {
    let emu = emulator().await;
    emu.add_fault(Fault::hang("GET", INCIDENTS));
    let failure = impatient_client()
        .find_by_correlation_id(&admin(&emu), "inc-hang-get")
        .await
        .outcome
        .unwrap_err();
    assert!(
        matches!(&failure, Failure::Transient { ambiguous: false, message } if message.contains("did not answer in time")),
        "{failure:?}"
    );
}

#[tokio::test]
async fn connection_refused_is_transient_and_not_ambiguous() {
    let url = closed_port_url().await;
    let conn = connection(&url, "admin", "admin", "incident");
    let exchange = client().create(&conn, &new_incident("inc-refused")).await;
    let failure = exchange.outcome.unwrap_err();
    assert!(
        matches!(&failure, Failure::Transient { ambiguous: false, message } if message.contains("could not connect")),
        "{failure:?}"
    );
    let call = &exchange.calls[0];
    assert_eq!(call.status, None);
    assert!(
        call.error.as_deref().unwrap().contains("onnect"),
        "{call:?}"
    );
}

#[tokio::test]
async fn fault_with_a_custom_status_body_keeps_servicenows_words() {
    let emu = emulator().await;
    emu.add_fault(
        Fault::status("POST", INCIDENTS, 403).with_body(serde_json::json!({
            "error": {"message": "User Not Authorized", "detail": "Failed API level ACL Validation"},
            "status": "failure"
        })),
    );
    let failure = client()
        .create(&admin(&emu), &new_incident("inc-api-acl"))
        .await
        .outcome
        .unwrap_err();
    assert_eq!(
        failure,
        Failure::Rejected {
            status: 403,
            message: "User Not Authorized".into(),
            detail: Some("Failed API level ACL Validation".into()),
        }
    );
}
