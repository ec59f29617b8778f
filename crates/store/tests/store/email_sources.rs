//! An email source's settings are stored with it and come back as saved, on create and
//! on update; its secret (the local part of its address) finds it.

use secrecy::SecretString;
use snowbound_core::ingest::email::EmailSettings;
use snowbound_core::source::SourceKind;
use snowbound_core::Severity;
use snowbound_store::SecretBox;

use crate::common::{source, team_and_integration, TestDb};

on_both_backends!(email_settings_round_trip_and_the_secret_finds_the_source);

async fn email_settings_round_trip_and_the_secret_finds_the_source(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (team, _) = team_and_integration(&*store).await;
    let mut mail = source(&team, SourceKind::Email, "mail");
    // Times are stored as milliseconds.
    let now = chrono::DateTime::from_timestamp_millis(mail.created_at.timestamp_millis()).unwrap();
    (mail.created_at, mail.updated_at) = (now, now);
    mail.email = Some(EmailSettings {
        dedup_pattern: Some(r"#(\d+)".into()),
        default_severity: Severity::Minor,
        ..EmailSettings::default()
    });
    let secret = format!("sbi_{}", "ab".repeat(32));
    store
        .create_source(&mail, &SecretString::from(secret.clone()))
        .await
        .unwrap();
    assert_eq!(store.get_source(mail.id).await.unwrap(), mail);
    assert_eq!(
        store.source_by_secret(&secret).await.unwrap(),
        Some(mail.clone())
    );

    mail.email.as_mut().unwrap().resolved_pattern = "(?i)all clear".into();
    store.update_source(&mail).await.unwrap();
    let listed = store.list_sources(Some(&[team.id])).await.unwrap();
    assert_eq!(listed, vec![mail]);
}
