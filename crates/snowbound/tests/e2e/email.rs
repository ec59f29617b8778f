//! Email sources, as a monitoring tool that can only send mail uses them: a real SMTP
//! client (lettre) sends real MIME — multipart, encoded subjects — to the source's
//! address; the mail opens an incident and a reply to it resolves it. Unknown
//! recipients are refused at RCPT, before any mail is taken.

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::{json, Value};
use snowbound_emulator::EmulatorConfig;
use snowbound_testkit::{eventually, on_both_backends, Backend, TestApp};

on_both_backends!(an_emailed_alert_opens_an_incident_and_a_reply_resolves_it);

const DOMAIN: &str = "alerts.example.com";

fn mailer(t: &TestApp) -> AsyncSmtpTransport<Tokio1Executor> {
    let addr = t.app.as_ref().unwrap().smtp_addr.expect("SMTP listens");
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .build()
}

fn nagios() -> Mailbox {
    "Nagios <nagios@monitoring.example>".parse().unwrap()
}

async fn incidents(t: &TestApp) -> Vec<Value> {
    t.get("/api/v1/incidents").await.as_array().unwrap().clone()
}

async fn an_emailed_alert_opens_an_incident_and_a_reply_resolves_it(backend: Backend) {
    let t = TestApp::spawn_with(backend, EmulatorConfig::default(), |c| {
        c.smtp_listen = Some("127.0.0.1:0".parse().unwrap());
        c.smtp_domain = Some(DOMAIN.into());
    })
    .await;
    let team = t.team("ops").await;
    t.integration(team, "always", json!({})).await;
    let source = t
        .post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "email", "name": "nagios mail",
                   "severity_map": {"crit": "critical"},
                   "email": {"severity_pattern": "^(\\w+):"}}),
        )
        .await;
    let address = source["email_address"].as_str().unwrap().to_owned();
    assert!(address.ends_with(&format!("@{DOMAIN}")), "{address}");
    assert_eq!(source["email"]["severity_pattern"], "^(\\w+):");
    assert_eq!(
        source["email"]["resolved_pattern"],
        "(?i)\\b(resolved|recovered)\\b"
    );
    let mailer = mailer(&t);

    let first = Message::builder()
        .from(nagios())
        .to(address.parse().unwrap())
        .message_id(Some("<problem-42@monitoring.example>".into()))
        .subject("CRIT: Disk füll on db1 — /var 99 %")
        .multipart(MultiPart::alternative_plain_html(
            String::from("/var on db1 is 99% full.\nFree space: 120 MB"),
            String::from("<p>/var on db1 is <b>99%</b> full.</p>"),
        ))
        .unwrap();
    mailer.send(first).await.expect("the first mail is taken");
    let opened = incidents(&t).await;
    assert_eq!(
        opened.len(),
        1,
        "250 after DATA means it is stored: {opened:?}"
    );
    let incident = &opened[0];
    assert_eq!(incident["title"], "CRIT: Disk füll on db1 — /var 99 %");
    assert_eq!(incident["severity"], "critical");
    assert_eq!(incident["status"], "open");
    let id = incident["id"].as_str().unwrap().to_owned();
    let detail = t.get(&format!("/api/v1/incidents/{id}")).await;
    assert!(
        detail["description"]
            .as_str()
            .unwrap()
            .starts_with("/var on db1 is 99% full.\nFree space: 120 MB"),
        "{detail}"
    );
    t.wait_synced(id.parse().unwrap()).await;
    assert_eq!(t.record(id.parse().unwrap()).unwrap()["urgency"], "1");

    // A repeat in the same thread updates the incident rather than opening another.
    let repeat = Message::builder()
        .from(nagios())
        .to(address.parse().unwrap())
        .in_reply_to("<problem-42@monitoring.example>".into())
        .references("<problem-42@monitoring.example>".into())
        .subject("CRIT: Disk füll on db1 — /var 100 %")
        .body("still full".to_owned())
        .unwrap();
    mailer.send(repeat).await.unwrap();
    let after_repeat = incidents(&t).await;
    assert_eq!(after_repeat.len(), 1);
    assert_eq!(
        after_repeat[0]["title"],
        "CRIT: Disk füll on db1 — /var 100 %"
    );

    // The reply resolves it, and ServiceNow follows.
    let reply = Message::builder()
        .from(nagios())
        .to(address.parse().unwrap())
        .in_reply_to("<problem-42@monitoring.example>".into())
        .references("<problem-42@monitoring.example>".into())
        .subject("Re: RECOVERED: Disk on db1")
        .body("/var at 40%".to_owned())
        .unwrap();
    mailer.send(reply).await.unwrap();
    let resolved = t.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(resolved["status"], "resolved");
    eventually("ServiceNow resolves the record", || async {
        t.record(id.parse().unwrap())
            .is_some_and(|r| r["state"] == "6")
    })
    .await;

    // Mail to an address no email source has is refused at RCPT, nothing stored.
    let stranger = Message::builder()
        .from(nagios())
        .to(format!("{}@{DOMAIN}", "0".repeat(64)).parse().unwrap())
        .subject("CRIT: nobody")
        .body(String::new())
        .unwrap();
    let refused = mailer.send(stranger).await.unwrap_err();
    assert!(refused.is_permanent(), "{refused}");
    assert!(
        refused.to_string().contains("No such recipient"),
        "{refused}"
    );
    let other_domain = address.replace(DOMAIN, "elsewhere.example");
    let refused = mailer
        .send(
            Message::builder()
                .from(nagios())
                .to(other_domain.parse().unwrap())
                .subject("CRIT: wrong domain")
                .body(String::new())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert!(refused.is_permanent(), "{refused}");
    // A mail without a subject cannot become an alert: refused at DATA, saying why.
    let untitled = Message::builder()
        .from(nagios())
        .to(address.parse().unwrap())
        .body("no subject".to_owned())
        .unwrap();
    let refused = mailer.send(untitled).await.unwrap_err();
    assert!(refused.to_string().contains("subject"), "{refused}");
    assert_eq!(incidents(&t).await.len(), 1);

    // An email source's settings are checked by name.
    let bad = t
        .try_post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "email", "name": "bad", "email": {"resolved_pattern": "("}}),
        )
        .await;
    assert_eq!(bad.field(), "email.resolved_pattern");
    let misplaced = t
        .try_post(
            "/api/v1/sources",
            json!({"team_id": team, "type": "webhook", "name": "hook", "email": {}}),
        )
        .await;
    assert_eq!(misplaced.field(), "email");
}
