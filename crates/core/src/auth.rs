//! How an integration authenticates to its instance: the non-secret part
//! ([`ServiceNowAuth`], stored with the settings) and the secrets ([`Credentials`], which
//! the store keeps sealed and hands out only as [`SecretString`]s).

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::validate::{check_text, FieldError};

/// `servicenow.auth` without its secrets. The names are the HTTP API's contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServiceNowAuth {
    /// Basic: refused by instances enforcing the Basic authentication restriction unless
    /// the account is web-service-access-only or holds `snc_basic_auth_api_access`.
    Basic { username: String },
    /// OAuth client credentials grant (Washington DC and later, off until enabled).
    OauthClientCredentials { client_id: String },
    /// OAuth resource-owner password grant; its answers carry a refresh token.
    OauthPassword { client_id: String, username: String },
    /// `x-sn-apikey` header; needs a REST API Access Policy on the instance.
    ApiKey,
}

/// One of the secrets an integration may hold; `field` is its name in `servicenow.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    Password,
    ClientSecret,
    ApiKey,
}

impl SecretKind {
    pub fn field(self) -> &'static str {
        match self {
            SecretKind::Password => "password",
            SecretKind::ClientSecret => "client_secret",
            SecretKind::ApiKey => "api_key",
        }
    }

    /// For sentences: "the client secret is not set".
    pub fn words(self) -> &'static str {
        match self {
            SecretKind::Password => "password",
            SecretKind::ClientSecret => "client secret",
            SecretKind::ApiKey => "API key",
        }
    }
}

/// `sys_user.user_name` holds 100; client ids are 32 hex digits on an instance, but an
/// admin may name them, so they get the same room.
pub const AUTH_NAME_MAX_CHARS: usize = crate::integration_limits::USERNAME_MAX_CHARS;
/// Secrets are pasted, never typed; anything longer is not one.
pub const SECRET_MAX_CHARS: usize = 4096;

impl ServiceNowAuth {
    /// The API name of the type (`basic`, `oauth_client_credentials`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            ServiceNowAuth::Basic { .. } => "basic",
            ServiceNowAuth::OauthClientCredentials { .. } => "oauth_client_credentials",
            ServiceNowAuth::OauthPassword { .. } => "oauth_password",
            ServiceNowAuth::ApiKey => "api_key",
        }
    }

    /// The ServiceNow user the integration acts as, when the settings name one.
    pub fn username(&self) -> Option<&str> {
        match self {
            ServiceNowAuth::Basic { username } | ServiceNowAuth::OauthPassword { username, .. } => {
                Some(username)
            }
            _ => None,
        }
    }

    pub fn client_id(&self) -> Option<&str> {
        match self {
            ServiceNowAuth::OauthClientCredentials { client_id }
            | ServiceNowAuth::OauthPassword { client_id, .. } => Some(client_id),
            _ => None,
        }
    }

    /// The secrets this type needs; the store keeps no others.
    pub fn secrets(&self) -> &'static [SecretKind] {
        match self {
            ServiceNowAuth::Basic { .. } => &[SecretKind::Password],
            ServiceNowAuth::OauthClientCredentials { .. } => &[SecretKind::ClientSecret],
            ServiceNowAuth::OauthPassword { .. } => {
                &[SecretKind::ClientSecret, SecretKind::Password]
            }
            ServiceNowAuth::ApiKey => &[SecretKind::ApiKey],
        }
    }

    pub fn uses(&self, kind: SecretKind) -> bool {
        self.secrets().contains(&kind)
    }

    /// Surrounding whitespace in a pasted name is never meant.
    pub fn trimmed(&self) -> ServiceNowAuth {
        let t = |s: &String| s.trim().to_owned();
        match self {
            ServiceNowAuth::Basic { username } => ServiceNowAuth::Basic {
                username: t(username),
            },
            ServiceNowAuth::OauthClientCredentials { client_id } => {
                ServiceNowAuth::OauthClientCredentials {
                    client_id: t(client_id),
                }
            }
            ServiceNowAuth::OauthPassword {
                client_id,
                username,
            } => ServiceNowAuth::OauthPassword {
                client_id: t(client_id),
                username: t(username),
            },
            ServiceNowAuth::ApiKey => ServiceNowAuth::ApiKey,
        }
    }

    /// Which stored secrets may not be kept when the settings change from `current` to
    /// `self`: a stored secret goes only to the instance, client and user it was entered
    /// for. A secret in this list must be given again (or the change refused).
    pub fn secrets_to_reenter(
        &self,
        instance_url: &str,
        current: &ServiceNowAuth,
        current_instance_url: &str,
    ) -> Vec<SecretKind> {
        let moved = instance_url != current_instance_url;
        self.secrets()
            .iter()
            .copied()
            .filter(|kind| {
                if moved || !current.uses(*kind) {
                    return true;
                }
                match kind {
                    // The password belongs to the user; with OAuth also to the client.
                    SecretKind::Password => {
                        self.username() != current.username()
                            || self.client_id() != current.client_id()
                    }
                    SecretKind::ClientSecret => self.client_id() != current.client_id(),
                    SecretKind::ApiKey => false,
                }
            })
            .collect()
    }
}

/// Every problem of the non-secret auth fields, named by their API path
/// (`servicenow.auth.client_id`).
pub fn validate_auth(auth: &ServiceNowAuth) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut check = |field: &str, value: &str| {
        let path = format!("servicenow.auth.{field}");
        if value.trim().is_empty() {
            errors.push(FieldError::new(path, "is required"));
        } else if let Err(message) = check_text(value, AUTH_NAME_MAX_CHARS) {
            errors.push(FieldError::new(path, message));
        }
    };
    if let Some(client_id) = auth.client_id() {
        check("client_id", client_id);
    }
    if let Some(username) = auth.username() {
        check("username", username);
    }
    errors
}

/// Why a secret given for `kind` cannot be stored (`servicenow.auth.client_secret`).
pub fn validate_secret(kind: SecretKind, secret: &str) -> Option<FieldError> {
    let path = format!("servicenow.auth.{}", kind.field());
    if secret.is_empty() {
        return Some(FieldError::new(path, "must not be empty"));
    }
    check_text(secret, SECRET_MAX_CHARS)
        .err()
        .map(|message| FieldError::new(path, message))
}

/// An integration's secrets. On an update a `None` keeps the stored one; read back, a
/// `None` is a secret that was never set.
#[derive(Clone, Default)]
pub struct Credentials {
    pub password: Option<SecretString>,
    pub client_secret: Option<SecretString>,
    pub api_key: Option<SecretString>,
}

impl Credentials {
    pub fn basic(password: SecretString) -> Credentials {
        Credentials {
            password: Some(password),
            ..Credentials::default()
        }
    }

    pub fn get(&self, kind: SecretKind) -> Option<&SecretString> {
        match kind {
            SecretKind::Password => self.password.as_ref(),
            SecretKind::ClientSecret => self.client_secret.as_ref(),
            SecretKind::ApiKey => self.api_key.as_ref(),
        }
    }

    /// The first secret `auth` needs that is not here.
    pub fn missing_for(&self, auth: &ServiceNowAuth) -> Option<SecretKind> {
        auth.secrets()
            .iter()
            .copied()
            .find(|kind| self.get(*kind).is_none())
    }
}

impl fmt::Debug for Credentials {
    // By hand, so no change to the fields can make a secret printable.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &Option<SecretString>| if s.is_some() { "[set]" } else { "[unset]" };
        f.debug_struct("Credentials")
            .field("password", &set(&self.password))
            .field("client_secret", &set(&self.client_secret))
            .field("api_key", &set(&self.api_key))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_api_names_are_the_issues() {
        let cases = [
            (
                ServiceNowAuth::Basic {
                    username: "u".into(),
                },
                json!({"type": "basic", "username": "u"}),
            ),
            (
                ServiceNowAuth::OauthClientCredentials {
                    client_id: "c".into(),
                },
                json!({"type": "oauth_client_credentials", "client_id": "c"}),
            ),
            (
                ServiceNowAuth::OauthPassword {
                    client_id: "c".into(),
                    username: "u".into(),
                },
                json!({"type": "oauth_password", "client_id": "c", "username": "u"}),
            ),
            (ServiceNowAuth::ApiKey, json!({"type": "api_key"})),
        ];
        for (auth, wire) in cases {
            assert_eq!(serde_json::to_value(&auth).unwrap(), wire);
            assert_eq!(
                serde_json::from_value::<ServiceNowAuth>(wire.clone()).unwrap(),
                auth
            );
            assert_eq!(wire["type"], auth.type_name());
        }
    }

    #[test]
    fn auth_fields_are_checked_with_their_path() {
        let auth = ServiceNowAuth::OauthPassword {
            client_id: " ".into(),
            username: "a\u{0}b".into(),
        };
        let fields: Vec<String> = validate_auth(&auth).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["servicenow.auth.client_id", "servicenow.auth.username"]
        );
        let long = ServiceNowAuth::OauthClientCredentials {
            client_id: "x".repeat(AUTH_NAME_MAX_CHARS + 1),
        };
        assert_eq!(validate_auth(&long)[0].field, "servicenow.auth.client_id");
        assert!(validate_auth(&ServiceNowAuth::ApiKey).is_empty());
        assert_eq!(
            validate_secret(SecretKind::ClientSecret, "").unwrap().field,
            "servicenow.auth.client_secret"
        );
        assert!(validate_secret(SecretKind::ApiKey, "k\u{0}")
            .unwrap()
            .message
            .contains("NUL"));
        assert!(validate_secret(SecretKind::ApiKey, "key").is_none());
    }

    #[test]
    fn stored_secrets_go_only_where_they_were_entered() {
        let url = "https://a.service-now.com";
        let oauth = ServiceNowAuth::OauthPassword {
            client_id: "c".into(),
            username: "u".into(),
        };
        assert!(oauth.secrets_to_reenter(url, &oauth, url).is_empty());
        assert_eq!(
            oauth.secrets_to_reenter("https://b.service-now.com", &oauth, url),
            [SecretKind::ClientSecret, SecretKind::Password]
        );
        let other_user = ServiceNowAuth::OauthPassword {
            client_id: "c".into(),
            username: "v".into(),
        };
        assert_eq!(
            other_user.secrets_to_reenter(url, &oauth, url),
            [SecretKind::Password]
        );
        // Basic → OAuth password with the same user: the password was entered for a
        // Basic login, not for this client; the client secret was never entered.
        let basic = ServiceNowAuth::Basic {
            username: "u".into(),
        };
        assert_eq!(
            oauth.secrets_to_reenter(url, &basic, url),
            [SecretKind::ClientSecret, SecretKind::Password]
        );
        assert_eq!(
            ServiceNowAuth::ApiKey.secrets_to_reenter(url, &basic, url),
            [SecretKind::ApiKey]
        );
    }

    #[test]
    fn debug_never_prints_a_secret() {
        let creds = Credentials {
            password: Some(SecretString::from("hunter2")),
            client_secret: None,
            api_key: Some(SecretString::from("k3y-value")),
        };
        let printed = format!("{creds:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("k3y"));
        assert_eq!(
            creds.missing_for(&ServiceNowAuth::OauthClientCredentials {
                client_id: "c".into()
            }),
            Some(SecretKind::ClientSecret)
        );
        assert_eq!(creds.missing_for(&ServiceNowAuth::ApiKey), None);
    }
}
