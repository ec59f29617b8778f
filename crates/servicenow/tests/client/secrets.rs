//! The password must never leave the Authorization header: not in ApiCalls (which users
//! see in the API call log), not in failures, not in Debug output.

use crate::common::*;
use base64::Engine;
use snowbound_emulator::Fault;
use snowbound_servicenow::ApiCall;

fn assert_no_secret(text: &str) {
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bot:{SECRET}"));
    assert!(!text.contains(SECRET), "password leaked: {text}");
    assert!(!text.contains(&basic), "Basic credentials leaked: {text}");
    assert!(
        !text.to_ascii_lowercase().contains("authorization"),
        "header leaked: {text}"
    );
}

#[tokio::test]
async fn no_api_call_or_failure_contains_the_password() {
    let emu = emulator_with_users(&[&format!("bot:{SECRET}:itil")]).await;
    let conn = connection(&emu.base_url(), "bot", SECRET, "incident");
    let client = client();
    let mut calls: Vec<ApiCall> = Vec::new();
    let mut texts: Vec<String> = Vec::new();

    let created = client.create(&conn, &new_incident("inc-secret")).await;
    calls.extend(created.calls);
    let sys_id = created.outcome.unwrap().sys_id;
    let updated = client
        .update(&conn, &sys_id, &fields(&[("state", "6")]))
        .await;
    texts.push(format!("{:?}", updated.outcome));
    calls.extend(updated.calls);
    let found = client.find_by_correlation_id(&conn, "inc-secret").await;
    calls.extend(found.calls);
    let choices = client.choices(&conn, "state").await; // 403 for itil
    texts.push(choices.outcome.unwrap_err().to_string());
    calls.extend(choices.calls);
    let (report, test_calls) = client.test_connection(&conn).await;
    texts.push(serde_json::to_string(&report).unwrap());
    calls.extend(test_calls);

    emu.add_fault(Fault::drop_after_write("POST", "/api/now/table/incident"));
    let dropped = client.create(&conn, &new_incident("inc-secret-2")).await;
    let failure = dropped.outcome.unwrap_err();
    texts.push(failure.to_string());
    texts.push(format!("{failure:?}"));
    texts.push(failure.user_message("incident"));
    calls.extend(dropped.calls);

    let wrong = connection(
        &emu.base_url(),
        "bot",
        &format!("{SECRET}-wrong"),
        "incident",
    );
    let refused = client.create(&wrong, &new_incident("inc-secret-3")).await;
    texts.push(refused.outcome.unwrap_err().to_string());
    calls.extend(refused.calls);

    let unreachable = connection(&closed_port_url().await, "bot", SECRET, "incident");
    let nothing = client
        .create(&unreachable, &new_incident("inc-secret-4"))
        .await;
    texts.push(nothing.outcome.unwrap_err().to_string());
    calls.extend(nothing.calls);

    assert!(calls.len() >= 8, "{calls:?}");
    assert_no_secret(&serde_json::to_string(&calls).unwrap());
    assert_no_secret(&format!("{calls:?}"));
    for text in &texts {
        assert_no_secret(text);
    }
    assert_no_secret(&format!("{conn:?} {client:?}"));
}
