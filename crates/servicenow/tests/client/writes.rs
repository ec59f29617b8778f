//! create / update / get / find_by_correlation_id round trips against the emulator,
//! asserting what ServiceNow ends up holding.

use crate::common::*;
use snowbound_servicenow::Failure;

#[tokio::test]
async fn create_stores_all_fields_and_answers_sys_id_and_number() {
    let emu = emulator().await;
    let conn = admin(&emu);
    let exchange = client().create(&conn, &new_incident("inc-create-1")).await;

    let record = exchange.outcome.expect("created");
    assert_eq!(record.sys_id.len(), 32, "{record:?}");
    assert!(record.number.starts_with("INC"), "{record:?}");
    assert_eq!(record.values["short_description"], "Disk full on db-1");
    // Server-side rules show in the returned values: priority from the matrix.
    assert_eq!(record.values["priority"], "3");
    // Reference fields come back as plain sys_ids, not {link, value} objects.
    assert_eq!(
        record.values["opened_by"],
        emu.user_sys_id("admin").expect("admin sys_id")
    );

    let stored = emu.records("incident");
    assert_eq!(stored.len(), 1);
    let stored = &stored[0];
    assert_eq!(stored["sys_id"], record.sys_id);
    assert_eq!(stored["number"], record.number);
    assert_eq!(stored["correlation_id"], "inc-create-1");
    assert_eq!(stored["correlation_display"], "Snowbound");
    assert_eq!(stored["urgency"], "2");

    assert_eq!(exchange.calls.len(), 1);
    let call = &exchange.calls[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.status, Some(201));
    assert!(call
        .url
        .ends_with("/api/now/table/incident?sysparm_exclude_reference_link=true"));
    let sent: serde_json::Value =
        serde_json::from_str(call.request_body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["correlation_id"], "inc-create-1");
    assert!(call
        .response_body
        .as_deref()
        .unwrap()
        .contains(&record.sys_id));
    assert!(call.error.is_none());
}

#[tokio::test]
async fn update_sends_only_the_given_fields() {
    let emu = emulator().await;
    let conn = admin(&emu);
    let client = client();
    let created = client
        .create(&conn, &new_incident("inc-update-1"))
        .await
        .outcome
        .unwrap();

    let change = fields(&[
        ("state", "6"),
        ("close_code", "Solution provided"),
        ("close_notes", "Disk cleaned"),
    ]);
    let exchange = client.update(&conn, &created.sys_id, &change).await;
    let updated = exchange.outcome.expect("updated");
    assert_eq!(updated.sys_id, created.sys_id);
    assert_eq!(updated.number, created.number);
    assert_eq!(updated.values["state"], "6");

    let stored = emu.record("incident", &created.sys_id).unwrap();
    assert_eq!(stored["state"], "6");
    assert_eq!(stored["close_code"], "Solution provided");
    assert_eq!(stored["close_notes"], "Disk cleaned");
    assert_eq!(stored["short_description"], "Disk full on db-1");

    let call = &exchange.calls[0];
    assert_eq!(call.method, "PATCH");
    assert_eq!(call.status, Some(200));
    let sent: serde_json::Value =
        serde_json::from_str(call.request_body.as_deref().unwrap()).unwrap();
    assert_eq!(sent.as_object().unwrap().len(), 3, "only the diff: {sent}");

    let patch = emu
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(
        patch.path,
        format!("/api/now/table/incident/{}", created.sys_id)
    );
    assert!(patch.query.contains("sysparm_exclude_reference_link=true"));
}

#[tokio::test]
async fn update_of_a_deleted_record_is_rejected_not_recreated() {
    let emu = emulator().await;
    let conn = admin(&emu);
    let exchange = client()
        .update(
            &conn,
            "0123456789abcdef0123456789abcdef",
            &fields(&[("state", "2")]),
        )
        .await;
    let failure = exchange.outcome.unwrap_err();
    assert!(
        matches!(&failure, Failure::Rejected { status: 404, message, .. } if message == "No Record found"),
        "{failure:?}"
    );
    assert!(emu.records("incident").is_empty());
}

#[tokio::test]
async fn get_reads_the_whole_record() {
    let emu = emulator().await;
    let conn = admin(&emu);
    let client = client();
    let created = client
        .create(&conn, &new_incident("inc-get-1"))
        .await
        .outcome
        .unwrap();
    let got = client.get(&conn, &created.sys_id).await.outcome.unwrap();
    assert_eq!(got.sys_id, created.sys_id);
    assert_eq!(got.values["correlation_id"], "inc-get-1");
}

#[tokio::test]
async fn find_by_correlation_id_finds_the_record_or_none() {
    let emu = emulator().await;
    let conn = admin(&emu);
    let client = client();
    // Characters that mean something in URLs and encoded queries must survive the trip.
    let awkward = "inc 42&state=7+x,y/z";
    let created = client
        .create(&conn, &new_incident(awkward))
        .await
        .outcome
        .unwrap();
    client
        .create(&conn, &new_incident("someone-else"))
        .await
        .outcome
        .unwrap();

    let found = client.find_by_correlation_id(&conn, awkward).await;
    let record = found.outcome.unwrap().expect("found");
    assert_eq!(record.sys_id, created.sys_id);
    assert_eq!(record.number, created.number);
    assert_eq!(record.values["state"], "1");
    assert_eq!(found.calls[0].method, "GET");
    assert!(found.calls[0].url.contains("sysparm_limit=2"));

    let missing = client.find_by_correlation_id(&conn, "never-created").await;
    assert_eq!(missing.outcome.unwrap(), None);
}

#[tokio::test]
async fn find_refuses_an_empty_correlation_id_without_calling() {
    let emu = emulator().await;
    let conn = admin(&emu);
    let client = client();
    client
        .create(&conn, &fields(&[("short_description", "no correlation")]))
        .await
        .outcome
        .unwrap();
    let exchange = client.find_by_correlation_id(&conn, "").await;
    assert!(matches!(
        exchange.outcome,
        Err(Failure::Rejected { status: 0, .. })
    ));
    assert!(exchange.calls.is_empty());
}

#[tokio::test]
async fn instance_url_with_trailing_slash_works() {
    let emu = emulator().await;
    let conn = connection(
        &format!("{}/", emu.base_url()),
        "admin",
        "admin",
        "incident",
    );
    let record = client()
        .create(&conn, &new_incident("inc-slash"))
        .await
        .outcome
        .expect("created");
    assert_eq!(emu.records("incident")[0]["sys_id"], record.sys_id);
    assert_eq!(emu.requests()[0].path, "/api/now/table/incident");
}

#[tokio::test]
async fn plain_http_is_refused_before_sending_without_the_local_flag() {
    let conn = connection("http://dev1.service-now.com", "admin", "admin", "incident");
    let exchange = crate::common::public_only_client()
        .create(&conn, &new_incident("x"))
        .await;
    let failure = exchange.outcome.unwrap_err();
    assert!(
        matches!(failure, Failure::Rejected { status: 0, .. }),
        "{failure:?}"
    );
    assert!(failure.to_string().contains("https://"));
    assert!(exchange.calls.is_empty());
}
