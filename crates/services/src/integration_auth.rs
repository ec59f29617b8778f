//! `servicenow.auth` of an integration command: the four types with their write-only
//! secrets ([`AuthInput`]), the older top-level `username`/`password` (meaning Basic), and
//! which secrets to store ([`checked_credentials`]). A stored secret goes only to the
//! instance, client and user it was entered for, so changing any of them needs it again.

use std::fmt;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use snowbound_core::auth::{validate_secret, SecretKind};
use snowbound_core::validate::FieldError;
use snowbound_core::{Credentials, Integration, ServiceNowAuth, ServiceNowSettings};

use crate::integrations::ServiceNowInput;

/// Secrets are taken but never serialized. A `skip_serializing_if` that always skips
/// does what `skip_serializing` does while keeping them in the OpenAPI schema, whose
/// derive drops fields that serde never serializes.
pub(crate) fn write_only<T>(_: &T) -> bool {
    true
}

/// `servicenow.auth` as sent. Names default to empty so a missing one is reported by
/// validation with its path (`servicenow.auth.client_id: is required`); secrets are never
/// serialized, so they cannot reach an answer or a merge base.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthInput {
    Basic {
        #[serde(default)]
        username: String,
        #[serde(default, skip_serializing_if = "write_only")]
        #[schema(write_only)]
        password: Option<String>,
    },
    OauthClientCredentials {
        #[serde(default)]
        client_id: String,
        #[serde(default, skip_serializing_if = "write_only")]
        #[schema(write_only)]
        client_secret: Option<String>,
    },
    OauthPassword {
        #[serde(default)]
        client_id: String,
        #[serde(default, skip_serializing_if = "write_only")]
        #[schema(write_only)]
        client_secret: Option<String>,
        #[serde(default)]
        username: String,
        #[serde(default, skip_serializing_if = "write_only")]
        #[schema(write_only)]
        password: Option<String>,
    },
    ApiKey {
        #[serde(default, skip_serializing_if = "write_only")]
        #[schema(write_only)]
        api_key: Option<String>,
    },
}

impl AuthInput {
    /// The non-secret part, as stored with the settings.
    pub fn settings(&self) -> ServiceNowAuth {
        match self {
            AuthInput::Basic { username, .. } => ServiceNowAuth::Basic {
                username: username.clone(),
            },
            AuthInput::OauthClientCredentials { client_id, .. } => {
                ServiceNowAuth::OauthClientCredentials {
                    client_id: client_id.clone(),
                }
            }
            AuthInput::OauthPassword {
                client_id,
                username,
                ..
            } => ServiceNowAuth::OauthPassword {
                client_id: client_id.clone(),
                username: username.clone(),
            },
            AuthInput::ApiKey { .. } => ServiceNowAuth::ApiKey,
        }
    }

    pub fn secret(&self, kind: SecretKind) -> Option<&str> {
        let secret = match (self, kind) {
            (AuthInput::Basic { password, .. }, SecretKind::Password)
            | (AuthInput::OauthPassword { password, .. }, SecretKind::Password) => password,
            (AuthInput::OauthClientCredentials { client_secret, .. }, SecretKind::ClientSecret)
            | (AuthInput::OauthPassword { client_secret, .. }, SecretKind::ClientSecret) => {
                client_secret
            }
            (AuthInput::ApiKey { api_key }, SecretKind::ApiKey) => api_key,
            _ => &None,
        };
        secret.as_deref()
    }

    /// Sets the secret `kind` if this type has one; `false` when it has none.
    pub fn set_secret(&mut self, kind: SecretKind, value: String) -> bool {
        let slot = match (self, kind) {
            (AuthInput::Basic { password, .. }, SecretKind::Password)
            | (AuthInput::OauthPassword { password, .. }, SecretKind::Password) => password,
            (AuthInput::OauthClientCredentials { client_secret, .. }, SecretKind::ClientSecret)
            | (AuthInput::OauthPassword { client_secret, .. }, SecretKind::ClientSecret) => {
                client_secret
            }
            (AuthInput::ApiKey { api_key }, SecretKind::ApiKey) => api_key,
            _ => return false,
        };
        *slot = Some(value);
        true
    }
}

/// The stored auth as a command that keeps every stored secret.
impl From<&ServiceNowAuth> for AuthInput {
    fn from(auth: &ServiceNowAuth) -> Self {
        match auth.clone() {
            ServiceNowAuth::Basic { username } => AuthInput::Basic {
                username,
                password: None,
            },
            ServiceNowAuth::OauthClientCredentials { client_id } => {
                AuthInput::OauthClientCredentials {
                    client_id,
                    client_secret: None,
                }
            }
            ServiceNowAuth::OauthPassword {
                client_id,
                username,
            } => AuthInput::OauthPassword {
                client_id,
                client_secret: None,
                username,
                password: None,
            },
            ServiceNowAuth::ApiKey => AuthInput::ApiKey { api_key: None },
        }
    }
}

impl fmt::Debug for AuthInput {
    // By hand: the secrets never print, whatever the fields become.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.settings().fmt(f)
    }
}

/// Whether the command uses the top-level form; its errors are then named there
/// (`servicenow.password`), where the caller put the values.
pub fn uses_top_level_form(input: &ServiceNowInput) -> bool {
    input.username.is_some() || input.password.is_some()
}

fn path(input: &ServiceNowInput, kind: SecretKind) -> String {
    let basic = matches!(input.auth, None | Some(AuthInput::Basic { .. }));
    if kind == SecretKind::Password && basic && uses_top_level_form(input) {
        "servicenow.password".into()
    } else {
        format!("servicenow.auth.{}", kind.field())
    }
}

/// Both forms at once must say the same: the top-level fields mean Basic.
fn check_agreement(input: &ServiceNowInput, errors: &mut Vec<FieldError>) {
    let Some(auth) = &input.auth else {
        if input.username.is_none() {
            errors.push(FieldError::new(
                "servicenow.auth",
                "is required (or the top-level username and password, meaning Basic)",
            ));
        }
        return;
    };
    let basic = matches!(auth, AuthInput::Basic { .. });
    if let Some(username) = &input.username {
        if !basic {
            errors.push(FieldError::new(
                "servicenow.username",
                format!(
                    "means Basic authentication, but servicenow.auth is {}: send one of them",
                    auth.settings().type_name()
                ),
            ));
        } else if auth.settings().username() != Some(username.as_str()) {
            errors.push(FieldError::new(
                "servicenow.username",
                "disagrees with servicenow.auth.username: send one of them",
            ));
        }
    }
    if let Some(password) = &input.password {
        match auth.secret(SecretKind::Password) {
            _ if !basic && input.username.is_none() => errors.push(FieldError::new(
                "servicenow.password",
                format!(
                    "means Basic authentication, but servicenow.auth is {}: send the secrets \
                     in servicenow.auth",
                    auth.settings().type_name()
                ),
            )),
            Some(other) if other != password => errors.push(FieldError::new(
                "servicenow.password",
                "disagrees with servicenow.auth.password: send one of them",
            )),
            _ => {}
        }
    }
}

/// The secrets to store with `servicenow` (`None` keeps the stored one). `current` is the
/// stored integration on a change (`None` on create); problems are pushed to `errors`.
pub fn checked_credentials(
    input: &ServiceNowInput,
    servicenow: &ServiceNowSettings,
    current: Option<&Integration>,
    errors: &mut Vec<FieldError>,
) -> Credentials {
    check_agreement(input, errors);
    let reenter = current.map(|c| {
        servicenow.auth.secrets_to_reenter(
            &servicenow.instance_url,
            &c.servicenow.auth,
            &c.servicenow.instance_url,
        )
    });
    let mut credentials = Credentials::default();
    for &kind in servicenow.auth.secrets() {
        let sent = input
            .auth
            .as_ref()
            .and_then(|a| a.secret(kind))
            .or(match kind {
                SecretKind::Password => input.password.as_deref(),
                _ => None,
            });
        let field = path(input, kind);
        match (sent, &reenter) {
            (Some(secret), _) => match validate_secret(kind, secret) {
                Some(mut e) => {
                    e.field = field;
                    errors.push(e);
                }
                None => *slot(&mut credentials, kind) = Some(SecretString::from(secret)),
            },
            (None, None) => errors.push(FieldError::new(field, "is required")),
            (None, Some(reenter)) if reenter.contains(&kind) => errors.push(FieldError::new(
                field,
                format!(
                    "is required when the instance URL, the authentication type, the client \
                     id or the user changes: the stored {} is only sent to the instance, \
                     client and user it was entered for",
                    kind.words()
                ),
            )),
            (None, Some(_)) => {}
        }
    }
    credentials
}

fn slot(credentials: &mut Credentials, kind: SecretKind) -> &mut Option<SecretString> {
    match kind {
        SecretKind::Password => &mut credentials.password,
        SecretKind::ClientSecret => &mut credentials.client_secret,
        SecretKind::ApiKey => &mut credentials.api_key,
    }
}
