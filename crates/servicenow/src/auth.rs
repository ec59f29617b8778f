//! How a call proves who it is: Basic, an OAuth bearer token (client credentials or
//! password grant) or an API key, with the secrets it needs. Secrets leave a
//! [`SecretString`] only into a sensitive-marked header or a token request's body.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use snowbound_core::{Credentials, Integration, SecretKind, ServiceNowAuth};
use url::Url;
use uuid::Uuid;

use crate::connection::Connection;

/// An integration's authentication with its secrets.
#[derive(Clone)]
pub enum Auth {
    Basic {
        username: String,
        password: SecretString,
    },
    OAuthClientCredentials {
        client_id: String,
        client_secret: SecretString,
    },
    OAuthPassword {
        client_id: String,
        client_secret: SecretString,
        username: String,
        password: SecretString,
    },
    /// Sent as the `x-sn-apikey` header.
    ApiKey { api_key: SecretString },
}

/// The header ServiceNow reads an API key from (AUTH §1.4).
pub(crate) const API_KEY_HEADER: &str = "x-sn-apikey";

/// The shape of an [`Auth`], without secrets: what failure messages depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthKind {
    Basic,
    OAuthClientCredentials,
    OAuthPassword,
    ApiKey,
}

impl Auth {
    /// The settings' auth with the stored secrets; the secret missing, if one is.
    pub fn new(settings: &ServiceNowAuth, credentials: &Credentials) -> Result<Auth, SecretKind> {
        let secret = |kind: SecretKind| credentials.get(kind).cloned().ok_or(kind);
        Ok(match settings {
            ServiceNowAuth::Basic { username } => Auth::Basic {
                username: username.clone(),
                password: secret(SecretKind::Password)?,
            },
            ServiceNowAuth::OauthClientCredentials { client_id } => Auth::OAuthClientCredentials {
                client_id: client_id.clone(),
                client_secret: secret(SecretKind::ClientSecret)?,
            },
            ServiceNowAuth::OauthPassword {
                client_id,
                username,
            } => Auth::OAuthPassword {
                client_id: client_id.clone(),
                client_secret: secret(SecretKind::ClientSecret)?,
                username: username.clone(),
                password: secret(SecretKind::Password)?,
            },
            ServiceNowAuth::ApiKey => Auth::ApiKey {
                api_key: secret(SecretKind::ApiKey)?,
            },
        })
    }

    pub(crate) fn kind(&self) -> AuthKind {
        match self {
            Auth::Basic { .. } => AuthKind::Basic,
            Auth::OAuthClientCredentials { .. } => AuthKind::OAuthClientCredentials,
            Auth::OAuthPassword { .. } => AuthKind::OAuthPassword,
            Auth::ApiKey { .. } => AuthKind::ApiKey,
        }
    }

    pub(crate) fn is_oauth(&self) -> bool {
        matches!(
            self,
            Auth::OAuthClientCredentials { .. } | Auth::OAuthPassword { .. }
        )
    }

    /// The user the settings name, for messages.
    pub fn username(&self) -> Option<&str> {
        match self {
            Auth::Basic { username, .. } | Auth::OAuthPassword { username, .. } => Some(username),
            _ => None,
        }
    }

    pub fn client_id(&self) -> Option<&str> {
        match self {
            Auth::OAuthClientCredentials { client_id, .. }
            | Auth::OAuthPassword { client_id, .. } => Some(client_id),
            _ => None,
        }
    }

    /// Every secret, for scrubbing text that is about to be logged.
    pub(crate) fn secrets(&self) -> Vec<&SecretString> {
        match self {
            Auth::Basic { password, .. } => vec![password],
            Auth::OAuthClientCredentials { client_secret, .. } => vec![client_secret],
            Auth::OAuthPassword {
                client_secret,
                password,
                ..
            } => vec![client_secret, password],
            Auth::ApiKey { api_key } => vec![api_key],
        }
    }
}

impl fmt::Debug for Auth {
    // By hand, so no change to the variants can make a secret printable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct(match self.kind() {
            AuthKind::Basic => "Basic",
            AuthKind::OAuthClientCredentials => "OAuthClientCredentials",
            AuthKind::OAuthPassword => "OAuthPassword",
            AuthKind::ApiKey => "ApiKey",
        });
        if let Some(client_id) = self.client_id() {
            s.field("client_id", &client_id);
        }
        if let Some(username) = self.username() {
            s.field("username", &username);
        }
        s.field("secrets", &"[redacted]").finish()
    }
}

/// Why no [`Connection`] can be built from stored settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error("the instance URL is not valid: {0}")]
    InvalidUrl(String),
    #[error("the {} is not set: enter it in the integration's settings", .0.words())]
    MissingSecret(SecretKind),
}

impl Connection {
    /// The connection an integration's settings and stored secrets describe; its tokens
    /// are cached under the integration's id.
    pub fn for_integration(
        integration: &Integration,
        credentials: &Credentials,
    ) -> Result<Connection, ConnectionError> {
        let settings = &integration.servicenow;
        let instance_url = Url::parse(&settings.instance_url)
            .map_err(|e| ConnectionError::InvalidUrl(e.to_string()))?;
        let auth =
            Auth::new(&settings.auth, credentials).map_err(ConnectionError::MissingSecret)?;
        Ok(Connection {
            instance_url,
            auth,
            table: settings.table.clone(),
            integration: Some(integration.id),
        })
    }

    /// Where this connection's token lives in the client's cache: the integration and a
    /// digest of everything the token depends on, so new credentials never reuse a token
    /// obtained with the old ones. Only the digest is kept, never the secrets.
    pub(crate) fn token_key(&self) -> TokenKey {
        let mut hash = Sha256::new();
        let mut part = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        };
        part(self.integration.unwrap_or(Uuid::nil()).as_bytes());
        part(self.instance_url.as_str().as_bytes());
        part(format!("{:?}", self.auth.kind()).as_bytes());
        part(self.auth.client_id().unwrap_or("").as_bytes());
        part(self.auth.username().unwrap_or("").as_bytes());
        for secret in self.auth.secrets() {
            part(secret.expose_secret().as_bytes());
        }
        TokenKey(hash.finalize().into())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenKey([u8; 32]);

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(auth: Auth) -> Connection {
        Connection {
            instance_url: Url::parse("https://dev1.service-now.com").unwrap(),
            auth,
            table: "incident".into(),
            integration: None,
        }
    }

    fn oauth(secret: &str) -> Auth {
        Auth::OAuthPassword {
            client_id: "client".into(),
            client_secret: SecretString::from(secret.to_owned()),
            username: "snowbound".into(),
            password: SecretString::from("pa55word-of-user"),
        }
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let printed = format!("{:?} {:#?}", conn(oauth("cl1ent-s3cret")), oauth("x"));
        assert!(!printed.contains("cl1ent-s3cret"), "{printed}");
        assert!(!printed.contains("pa55word"), "{printed}");
        assert!(printed.contains("snowbound") && printed.contains("client"));
    }

    #[test]
    fn new_credentials_or_another_integration_get_another_token() {
        let a = conn(oauth("one")).token_key();
        assert!(a == conn(oauth("one")).token_key());
        assert!(a != conn(oauth("two")).token_key());
        let mut other = conn(oauth("one"));
        other.integration = Some(Uuid::now_v7());
        assert!(a != other.token_key());
    }

    #[test]
    fn a_missing_secret_is_named() {
        let settings = ServiceNowAuth::OauthClientCredentials {
            client_id: "c".into(),
        };
        let err = Auth::new(&settings, &Credentials::basic("pw".into())).unwrap_err();
        assert_eq!(err, SecretKind::ClientSecret);
        assert_eq!(
            ConnectionError::MissingSecret(err).to_string(),
            "the client secret is not set: enter it in the integration's settings"
        );
    }
}
