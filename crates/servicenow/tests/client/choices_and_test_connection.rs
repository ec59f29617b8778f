//! sys_choice lists and Test Connection, as a person setting up an integration sees them.

use crate::common::*;
use snowbound_emulator::Fault;
use snowbound_servicenow::{Choice, Failure, TestReport};

fn values(choices: &[Choice]) -> Vec<&str> {
    choices.iter().map(|c| c.value.as_str()).collect()
}

fn check<'a>(report: &'a TestReport, name: &str) -> &'a snowbound_servicenow::Check {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:?}"))
}

#[tokio::test]
async fn state_choices_come_in_sequence_order() {
    let emu = emulator().await;
    let exchange = client().choices(&admin(&emu), "state").await;
    let choices = exchange.outcome.unwrap();
    assert_eq!(values(&choices), ["1", "2", "3", "6", "7", "8"]);
    assert_eq!(
        choices[3],
        Choice {
            value: "6".into(),
            label: "Resolved".into()
        }
    );
    assert_eq!(exchange.calls.len(), 1);
    assert!(exchange.calls[0].url.contains("/api/now/table/sys_choice?"));
}

#[tokio::test]
async fn inactive_close_codes_are_left_out() {
    let emu = emulator().await;
    let choices = client()
        .choices(&admin(&emu), "close_code")
        .await
        .outcome
        .unwrap();
    let values = values(&choices);
    assert_eq!(values.first(), Some(&"Duplicate"));
    assert!(values.contains(&"Solution provided"));
    assert!(!values.contains(&"Solved (Permanently)"), "{values:?}");
    assert_eq!(values.len(), 10, "{values:?}");
}

#[tokio::test]
async fn choices_defined_only_on_task_count_for_incident() {
    let emu = emulator().await;
    let choices = client()
        .choices(&admin(&emu), "approval")
        .await
        .outcome
        .unwrap();
    assert_eq!(
        values(&choices),
        ["not requested", "requested", "approved", "rejected"]
    );
}

#[tokio::test]
async fn a_field_without_choices_gives_an_empty_list() {
    let emu = emulator().await;
    let choices = client()
        .choices(&admin(&emu), "short_description")
        .await
        .outcome
        .unwrap();
    assert!(choices.is_empty());
}

#[tokio::test]
async fn a_field_name_with_query_syntax_is_refused() {
    let emu = emulator().await;
    let exchange = client()
        .choices(&admin(&emu), "state^ORelement=close_code")
        .await;
    assert!(matches!(
        exchange.outcome,
        Err(Failure::Rejected { status: 0, .. })
    ));
    assert!(exchange.calls.is_empty());
}

#[tokio::test]
async fn sys_choice_forbidden_is_a_403_rejection() {
    let emu = emulator_with_users(&["agent:pw:itil"]).await;
    let conn = connection(&emu.base_url(), "agent", "pw", "incident");
    let failure = client().choices(&conn, "state").await.outcome.unwrap_err();
    assert!(
        matches!(failure, Failure::Rejected { status: 403, .. }),
        "{failure:?}"
    );
}

#[tokio::test]
async fn test_connection_passes_for_a_good_setup_and_creates_nothing() {
    let emu = emulator().await;
    let (report, calls) = client().test_connection(&admin(&emu)).await;
    assert!(report.ok, "{report:#?}");
    assert!(report.warnings.is_empty(), "{report:#?}");
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Instance reachable",
            "Credentials accepted",
            "Table readable",
            "sys_choice readable"
        ]
    );
    assert!(report.checks.iter().all(|c| c.ok));
    assert!(
        check(&report, "Instance reachable")
            .detail
            .contains("plain http"),
        "{report:#?}"
    );
    assert!(check(&report, "Table readable")
        .detail
        .contains("Write rights show at the first create"));

    assert!(
        emu.records("incident").is_empty(),
        "test connection never creates"
    );
    assert!(calls.iter().all(|c| c.method == "GET"), "{calls:?}");
    assert_eq!(calls.len(), emu.requests().len());
    let table_read = emu
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/now/table/incident")
        .unwrap();
    assert!(
        table_read.query.contains("sysparm_limit=1"),
        "{table_read:?}"
    );
}

#[tokio::test]
async fn test_connection_without_sys_choice_read_passes_with_a_warning() {
    let emu = emulator_with_users(&["agent:pw:itil"]).await;
    let conn = connection(&emu.base_url(), "agent", "pw", "incident");
    let (report, calls) = client().test_connection(&conn).await;
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.warnings.len(), 1, "{report:#?}");
    let warning = &report.warnings[0];
    assert!(warning.contains("sys_choice"), "{warning}");
    assert!(warning.contains("manual values"), "{warning}");
    assert!(warning.contains("personalize_choices"), "{warning}");
    assert!(check(&report, "sys_choice readable").detail.contains("403"));
    assert_eq!(calls.last().unwrap().status, Some(403));
}

#[tokio::test]
async fn test_connection_with_a_bad_password_says_so_plainly() {
    let emu = emulator().await;
    let conn = connection(&emu.base_url(), "admin", "wrong", "incident");
    let (report, calls) = client().test_connection(&conn).await;
    assert!(!report.ok);
    assert!(check(&report, "Instance reachable").ok);
    let credentials = check(&report, "Credentials accepted");
    assert!(!credentials.ok);
    assert!(
        credentials
            .detail
            .contains("did not accept the username or password"),
        "{credentials:?}"
    );
    assert!(credentials.detail.contains("401"));
    assert_eq!(
        calls.len(),
        1,
        "nothing more is tried with refused credentials"
    );
}

#[tokio::test]
async fn test_connection_with_an_unknown_table_fails_that_check() {
    let emu = emulator().await;
    let conn = connection(&emu.base_url(), "admin", "admin", "u_tickets");
    let (report, _) = client().test_connection(&conn).await;
    assert!(!report.ok);
    assert!(check(&report, "Credentials accepted").ok);
    let table = check(&report, "Table readable");
    assert!(!table.ok);
    assert!(
        table.detail.contains("u_tickets does not exist"),
        "{table:?}"
    );
}

#[tokio::test]
async fn test_connection_with_a_read_only_user_passes() {
    // Write rights only show at the first create; the report says so rather than guess.
    let emu = emulator_with_users(&["reader:pw:incident_reader,personalize_choices"]).await;
    let conn = connection(&emu.base_url(), "reader", "pw", "incident");
    let (report, _) = client().test_connection(&conn).await;
    assert!(report.ok, "{report:#?}");
}

#[tokio::test]
async fn test_connection_to_nothing_fails_the_instance_check() {
    let conn = connection(&closed_port_url().await, "admin", "admin", "incident");
    let (report, calls) = client().test_connection(&conn).await;
    assert!(!report.ok);
    let instance = check(&report, "Instance reachable");
    assert!(!instance.ok);
    assert!(
        instance.detail.contains("Could not reach 127.0.0.1"),
        "{instance:?}"
    );
    assert!(report
        .checks
        .iter()
        .skip(1)
        .all(|c| !c.ok && c.detail.starts_with("Not checked")));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].status, None);
}

#[tokio::test]
async fn test_connection_refuses_plain_http_to_a_remote_host_without_calling() {
    let conn = connection("http://dev1.service-now.com", "admin", "admin", "incident");
    let (report, calls) = crate::common::public_only_client()
        .test_connection(&conn)
        .await;
    assert!(!report.ok);
    assert!(check(&report, "Instance reachable")
        .detail
        .contains("https://"));
    assert!(calls.is_empty());
}

#[tokio::test]
async fn test_connection_reports_a_server_error_on_the_table() {
    let emu = emulator().await;
    emu.add_fault(Fault::status("GET", "/api/now/table/incident", 503));
    let (report, _) = client().test_connection(&admin(&emu)).await;
    assert!(!report.ok);
    assert!(check(&report, "Instance reachable").ok);
    let table = check(&report, "Table readable");
    assert!(!table.ok);
    assert!(table.detail.contains("503"), "{table:?}");
}

#[tokio::test]
async fn test_connection_with_a_malformed_table_name_still_checks_the_rest() {
    let emu = emulator().await;
    let conn = connection(&emu.base_url(), "admin", "admin", "incident^ORactive=true");
    let (report, calls) = client().test_connection(&conn).await;
    assert!(!report.ok);
    assert!(check(&report, "Instance reachable").ok, "{report:#?}");
    assert!(check(&report, "Credentials accepted").ok, "{report:#?}");
    let table = check(&report, "Table readable");
    assert!(!table.ok);
    assert!(table.detail.contains("invalid table name"), "{table:?}");
    assert!(check(&report, "sys_choice readable").ok);
    // Only sys_choice was read; the malformed name never reached a URL.
    assert_eq!(calls.len(), 1);
    assert!(calls[0].url.contains("/sys_choice?"));
}
