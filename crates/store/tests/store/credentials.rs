//! The secrets of each authentication type: sealed at rest, kept when omitted, dropped
//! when the type no longer uses them, and settings written before `auth` existed.

use crate::common::*;
use secrecy::{ExposeSecret, SecretString};
use snowbound_core::{Credentials, ServiceNowAuth};
use snowbound_store::{SecretBox, Store};

on_both_backends!(
    each_type_keeps_the_secrets_it_uses_sealed,
    settings_stored_before_auth_read_as_basic,
);

const CLIENT_SECRET: &str = "cl1ent-s3cret-value";
const PASSWORD: &str = "us3r-pa55word-value";
const API_KEY: &str = "ap1-k3y-value";

fn secret(s: &str) -> Option<SecretString> {
    Some(SecretString::from(s.to_owned()))
}

fn shown(s: &Option<SecretString>) -> Option<&str> {
    s.as_ref().map(|s| s.expose_secret())
}

async fn set_flags(store: &dyn Store, id: uuid::Uuid) -> (bool, bool, bool) {
    let r = store.get_integration(id).await.unwrap();
    (r.password_set, r.client_secret_set, r.api_key_set)
}

async fn each_type_keeps_the_secrets_it_uses_sealed(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (_, mut integration) = team_and_integration(&*store).await;
    let id = integration.id;
    assert_eq!(set_flags(&*store, id).await, (true, false, false));

    // Basic → OAuth password: both secrets given; an API key sent along is not kept.
    integration.servicenow.auth = ServiceNowAuth::OauthPassword {
        client_id: "snowbound".into(),
        username: "svc".into(),
    };
    let all = Credentials {
        password: secret(PASSWORD),
        client_secret: secret(CLIENT_SECRET),
        api_key: secret(API_KEY),
    };
    store.update_integration(&integration, &all).await.unwrap();
    assert_eq!(set_flags(&*store, id).await, (true, true, false));
    let read = store.integration_credentials(id).await.unwrap();
    assert_eq!(shown(&read.password), Some(PASSWORD));
    assert_eq!(shown(&read.client_secret), Some(CLIENT_SECRET));
    assert_eq!(shown(&read.api_key), None);
    assert_eq!(
        store
            .get_integration(id)
            .await
            .unwrap()
            .integration
            .servicenow,
        integration.servicenow
    );

    // Omitted secrets keep the stored ones; a given one replaces only itself.
    let only_secret = Credentials {
        client_secret: secret("rotated-secret"),
        ..Credentials::default()
    };
    store
        .update_integration(&integration, &only_secret)
        .await
        .unwrap();
    let read = store.integration_credentials(id).await.unwrap();
    assert_eq!(shown(&read.password), Some(PASSWORD));
    assert_eq!(shown(&read.client_secret), Some("rotated-secret"));

    // Nothing is in clear in the database.
    let columns = db
        .raw_texts(
            "SELECT password_sealed || ' ' || client_secret_sealed || ' ' || api_key_sealed \
             || ' ' || settings FROM integrations",
        )
        .await
        .join("\n");
    for clear in [PASSWORD, "rotated-secret", CLIENT_SECRET, API_KEY] {
        assert!(!columns.contains(clear), "{clear} stored in clear");
    }

    // → API key: the password and client secret are dropped.
    integration.servicenow.auth = ServiceNowAuth::ApiKey;
    let key = Credentials {
        api_key: secret(API_KEY),
        ..Credentials::default()
    };
    store.update_integration(&integration, &key).await.unwrap();
    assert_eq!(set_flags(&*store, id).await, (false, false, true));
    let read = store.integration_credentials(id).await.unwrap();
    assert_eq!(shown(&read.api_key), Some(API_KEY));
    assert!(read.password.is_none() && read.client_secret.is_none());
    assert_eq!(read.missing_for(&integration.servicenow.auth), None);

    // Created as client credentials without its secret: nothing set, and said so.
    let mut other = integration.clone();
    other.id = snowbound_core::new_id();
    other.servicenow.auth = ServiceNowAuth::OauthClientCredentials {
        client_id: "c".into(),
    };
    store
        .create_integration(&other, &Credentials::basic(SecretString::from("unused")))
        .await
        .unwrap();
    assert_eq!(set_flags(&*store, other.id).await, (false, false, false));
    let read = store.integration_credentials(other.id).await.unwrap();
    assert!(read.missing_for(&other.servicenow.auth).is_some());
}

async fn settings_stored_before_auth_read_as_basic(db: TestDb) {
    let store = db.open(SecretBox::random()).await.unwrap();
    let (_, integration) = team_and_integration(&*store).await;
    // The settings column exactly as the first release wrote it.
    db.raw(&format!(
        r#"UPDATE integrations SET settings = '{{"instance_url":"http://127.0.0.1:1","username":"legacy","table":"incident","state_open":"1","state_acknowledged":null,"state_resolved":"6","close_code_field":"close_code","close_notes_field":"close_notes","close_code":"Solution provided","close_notes_default":"Resolved from Snowbound","severity":{{"primary_field":"urgency","primary_map":{{"critical":"1","warning":"2","minor":"3"}},"secondary_field":null,"secondary_map":null}}}}' WHERE id = '{}'"#,
        integration.id
    ))
    .await;
    let read = store.get_integration(integration.id).await.unwrap();
    assert_eq!(
        read.integration.servicenow.auth,
        ServiceNowAuth::Basic {
            username: "legacy".into()
        }
    );
    assert!(read.password_set);
    let creds = store.integration_credentials(integration.id).await.unwrap();
    assert_eq!(shown(&creds.password), Some("pw"));
}
