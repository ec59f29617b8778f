//! The Authorization fields shared by the create form and the ServiceNow Settings page
//! (`templates/auth_fields.html`): the four types, the form as an [`AuthInput`], and what
//! the fields show. Secrets are write-only: the inputs never carry a value, only whether
//! one is stored.

use snowbound_core::validate::FieldError;
use snowbound_core::ServiceNowAuth;
use snowbound_services::integrations::AuthInput;
use snowbound_store::IntegrationRecord;

use super::session::FormData;

/// The form fields that hold secrets; a page re-shown after an error drops them.
pub const SECRET_FIELDS: [&str; 3] = ["password", "client_secret", "api_key"];

/// The types the Authorization section offers, with their labels.
pub const AUTH_TYPES: [(&str, &str); 4] = [
    ("basic", "Basic (username and password)"),
    ("oauth_client_credentials", "OAuth 2.0 client credentials"),
    ("oauth_password", "OAuth 2.0 password grant"),
    ("api_key", "API key"),
];

/// The Authorization fields as a command. An empty secret is "not given": on the settings
/// page that keeps the stored one, on create the service reports it as required.
pub fn typed_auth(form: &FormData) -> AuthInput {
    let secret = |name: &str| form.get(name).filter(|v| !v.is_empty()).map(str::to_owned);
    match form.get("auth_type").unwrap_or("basic") {
        "oauth_client_credentials" => AuthInput::OauthClientCredentials {
            client_id: form.text("client_id"),
            client_secret: secret("client_secret"),
        },
        "oauth_password" => AuthInput::OauthPassword {
            client_id: form.text("client_id"),
            client_secret: secret("client_secret"),
            username: form.text("username"),
            password: secret("password"),
        },
        "api_key" => AuthInput::ApiKey {
            api_key: secret("api_key"),
        },
        _ => AuthInput::Basic {
            username: form.text("username"),
            password: secret("password"),
        },
    }
}

/// `form` without its secrets, for showing it again.
pub fn without_secrets(mut form: FormData) -> FormData {
    form.0.retain(|(k, _)| !SECRET_FIELDS.contains(&k.as_str()));
    form
}

/// What `auth_fields.html` shows: the type with its names, which secrets are stored, and
/// the errors of a refused save (by their API paths, `servicenow.auth.client_id`).
pub struct AuthView {
    pub types: [(&'static str, &'static str); 4],
    pub auth: ServiceNowAuth,
    pub password_set: bool,
    pub client_secret_set: bool,
    pub api_key_set: bool,
    pub errors: Vec<FieldError>,
}

impl AuthView {
    /// Nothing stored yet (the create form).
    pub fn new(auth: ServiceNowAuth) -> Self {
        AuthView {
            types: AUTH_TYPES,
            auth,
            password_set: false,
            client_secret_set: false,
            api_key_set: false,
            errors: Vec::new(),
        }
    }

    /// `auth` shown for the stored integration: which of its secrets are set.
    pub fn stored(auth: ServiceNowAuth, record: &IntegrationRecord) -> Self {
        AuthView {
            password_set: record.password_set,
            client_secret_set: record.client_secret_set,
            api_key_set: record.api_key_set,
            ..AuthView::new(auth)
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    /// Whether the shown type has the field (`username`, `client_id`, a secret's name).
    pub fn has(&self, field: &str) -> bool {
        match field {
            "username" => self.auth.username().is_some(),
            "client_id" => self.auth.client_id().is_some(),
            secret => self.auth.secrets().iter().any(|k| k.field() == secret),
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.auth.type_name()
    }

    pub fn username(&self) -> &str {
        self.auth.username().unwrap_or_default()
    }

    pub fn client_id(&self) -> &str {
        self.auth.client_id().unwrap_or_default()
    }

    /// The error of `servicenow.<field>` (`auth.client_id`); a Basic password sent the
    /// older way is named `servicenow.password`, so `auth.password` finds that too.
    pub fn err(&self, field: &str) -> Option<&str> {
        let path = format!("servicenow.{field}");
        let older = field
            .strip_prefix("auth.")
            .map(|f| format!("servicenow.{f}"));
        self.errors
            .iter()
            .find(|e| e.field == path || Some(&e.field) == older.as_ref())
            .map(|e| e.message.as_str())
    }
}
