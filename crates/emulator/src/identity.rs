//! Who is calling: the mutable authentication state of an instance (users, OAuth clients
//! and tokens, API keys, system properties) and the resolution of a Table API request to
//! a user by Bearer token, API key or Basic (docs/servicenow/AUTH_AND_INBOUND.md §1).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use base64::Engine;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::auth::{authenticate, User};
use crate::errors::SnError;
use crate::EmulatorConfig;

/// System properties the emulator reads (AUTH_AND_INBOUND.md §1.1–§1.3).
pub mod property {
    /// `true` allows `grant_type=client_credentials` (§1.2). Default `false`.
    pub const CLIENT_CREDENTIALS_ENABLED: &str =
        "glide.oauth.inbound.client.credential.grant_type.enabled";
    /// `true` refuses token parameters in the URL query (§1.3). Default `true`.
    pub const PARAMETERS_IN_POST_BODY_ONLY: &str = "glide.oauth.allow.parameters.in.post.body.only";
    /// `true` enforces the Basic authentication restriction (§1.1). Default `false`.
    pub const BASIC_AUTH_RESTRICTION_ENFORCE: &str =
        "glide.authenticate.basic_auth.restriction.enforce";
}

/// The role that lets an account keep using Basic under the restriction (§1.1).
pub const BASIC_AUTH_ROLE: &str = "snc_basic_auth_api_access";

/// An OAuth application registry entry ("OAuth API endpoint for external clients").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: String,
    /// The "OAuth Application User" a client-credentials token acts as (§1.2); without it
    /// that grant is refused for this client.
    #[serde(default)]
    pub application_user: Option<String>,
}

impl OAuthClient {
    pub fn new(client_id: &str, client_secret: &str) -> Self {
        OAuthClient {
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            application_user: None,
        }
    }

    pub fn with_application_user(mut self, user: &str) -> Self {
        self.application_user = Some(user.to_string());
        self
    }
}

/// A spec that is not `CLIENT_ID:SECRET[:APP_USER]` or `KEY:USER`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {spec:?}: expected {expected}")]
pub struct SpecParseError {
    what: &'static str,
    spec: String,
    expected: &'static str,
}

/// `CLIENT_ID:SECRET[:APP_USER]` (the secret cannot contain `:`), for `--oauth-client`.
impl std::str::FromStr for OAuthClient {
    type Err = SpecParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || SpecParseError {
            what: "OAuth client",
            spec: s.to_string(),
            expected: "CLIENT_ID:SECRET[:APP_USER]",
        };
        let mut parts = s.splitn(3, ':');
        let id = parts.next().filter(|p| !p.is_empty()).ok_or_else(err)?;
        let secret = parts.next().filter(|p| !p.is_empty()).ok_or_else(err)?;
        let client = OAuthClient::new(id, secret);
        Ok(match parts.next().filter(|p| !p.is_empty()) {
            Some(user) => client.with_application_user(user),
            None => client,
        })
    }
}

/// `KEY:USER`, for `--api-key`.
impl std::str::FromStr for ApiKey {
    type Err = SpecParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.rsplit_once(':') {
            Some((key, user)) if !key.is_empty() && !user.is_empty() => Ok(ApiKey::new(key, user)),
            _ => Err(SpecParseError {
                what: "API key",
                spec: s.to_string(),
                expected: "KEY:USER",
            }),
        }
    }
}

/// A REST API Key record (§1.4): the key, the user it acts as, an optional expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub key: String,
    pub user: String,
    #[serde(default)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl ApiKey {
    pub fn new(key: &str, user: &str) -> Self {
        ApiKey {
            key: key.to_string(),
            user: user.to_string(),
            expires_at: None,
        }
    }
}

/// What one issued token stands for.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    pub user: String,
    pub client_id: String,
    pub scope: String,
    pub expires_at: Instant,
}

impl Grant {
    fn live(&self, now: Instant) -> bool {
        now < self.expires_at
    }
}

/// How a request authenticated; shown in the request log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Basic,
    Bearer,
    ApiKey,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Basic => "basic",
            Method::Bearer => "bearer",
            Method::ApiKey => "api_key",
        }
    }
}

pub(crate) struct AuthState {
    pub users: Vec<User>,
    pub clients: Vec<OAuthClient>,
    pub properties: BTreeMap<String, String>,
    pub access_lifespan: Duration,
    pub refresh_lifespan: Duration,
    pub access_tokens: HashMap<String, Grant>,
    pub refresh_tokens: HashMap<String, Grant>,
    pub api_keys: Vec<ApiKey>,
    /// A REST API Access Policy for the Table API with the API key profile exists (§1.4).
    pub api_key_policy: bool,
    /// Tokens issued per grant type, for tests counting token calls.
    pub issued: BTreeMap<String, u64>,
}

pub(crate) fn default_properties() -> BTreeMap<String, String> {
    [
        (property::CLIENT_CREDENTIALS_ENABLED, "false"),
        (property::PARAMETERS_IN_POST_BODY_ONLY, "true"),
        (property::BASIC_AUTH_RESTRICTION_ENFORCE, "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// 32 random bytes, URL-safe: opaque like an instance's tokens.
pub(crate) fn new_token() -> String {
    let bytes: [u8; 32] = rand::thread_rng().gen();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl AuthState {
    pub fn from_config(config: &EmulatorConfig) -> Self {
        let mut properties = default_properties();
        properties.extend(config.properties.clone());
        AuthState {
            users: config.effective_users(),
            clients: config.oauth_clients.clone(),
            properties,
            access_lifespan: config.access_token_lifespan,
            refresh_lifespan: config.refresh_token_lifespan,
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            api_keys: config.api_keys.clone(),
            api_key_policy: config.api_key_policy,
            issued: BTreeMap::new(),
        }
    }

    pub fn property_is_true(&self, name: &str) -> bool {
        self.properties
            .get(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn add_client(&mut self, client: OAuthClient) {
        self.clients.retain(|c| c.client_id != client.client_id);
        self.clients.push(client);
    }

    pub fn add_api_key(&mut self, key: ApiKey) {
        self.api_keys.retain(|k| k.key != key.key);
        self.api_keys.push(key);
    }

    /// Adds the user, or replaces the one with the same name.
    pub fn upsert_user(&mut self, user: User) {
        match self.users.iter_mut().find(|u| u.name == user.name) {
            Some(u) => *u = user,
            None => self.users.push(user),
        }
    }

    /// The instance forgets every token: later use is "unknown token".
    pub fn revoke_tokens(&mut self) {
        self.access_tokens.clear();
        self.refresh_tokens.clear();
    }

    /// Every access token (and optionally refresh token) is past its lifespan now.
    pub fn expire_tokens(&mut self, refresh_too: bool) {
        let now = Instant::now();
        for g in self.access_tokens.values_mut() {
            g.expires_at = now;
        }
        if refresh_too {
            for g in self.refresh_tokens.values_mut() {
                g.expires_at = now;
            }
        }
    }

    pub fn live_access(&self, token: &str) -> Option<&Grant> {
        self.access_tokens
            .get(token)
            .filter(|g| g.live(Instant::now()))
    }

    pub fn live_refresh(&self, token: &str) -> Option<&Grant> {
        self.refresh_tokens
            .get(token)
            .filter(|g| g.live(Instant::now()))
    }

    pub fn count_live(&self) -> (usize, usize) {
        let now = Instant::now();
        (
            self.access_tokens.values().filter(|g| g.live(now)).count(),
            self.refresh_tokens.values().filter(|g| g.live(now)).count(),
        )
    }

    /// Expired tokens are dropped when new ones are issued, so a long run stays bounded.
    pub fn prune(&mut self) {
        let now = Instant::now();
        self.access_tokens.retain(|_, g| g.live(now));
        self.refresh_tokens.retain(|_, g| g.live(now));
    }

    /// Resolves a Table API request to a user: `Authorization: Bearer` (§1.2, §1.3), then
    /// an `x-sn-apikey` header or query parameter (§1.4), then Basic with the restriction
    /// when it is enforced (§1.1).
    pub fn identify(
        &self,
        authorization: Option<&str>,
        api_key: Option<&str>,
    ) -> Result<(User, Method), SnError> {
        if let Some((scheme, token)) = authorization.and_then(|h| h.trim().split_once(' ')) {
            if scheme.eq_ignore_ascii_case("bearer") {
                let grant = self
                    .live_access(token.trim())
                    .ok_or_else(SnError::unauthenticated)?;
                let user = self
                    .user(&grant.user)
                    .ok_or_else(SnError::unauthenticated)?;
                return Ok((user.clone(), Method::Bearer));
            }
        }
        if let (None, Some(key)) = (authorization, api_key) {
            // Without the policy the API key profile is not consulted at all, so any key,
            // valid or not, gets the same refusal.
            if !self.api_key_policy {
                return Err(SnError::api_key_not_allowed());
            }
            let now = chrono::Utc::now();
            let record = self
                .api_keys
                .iter()
                .find(|k| k.key == key && k.expires_at.is_none_or(|at| now < at))
                .ok_or_else(SnError::unauthenticated)?;
            let user = self
                .user(&record.user)
                .ok_or_else(SnError::unauthenticated)?;
            return Ok((user.clone(), Method::ApiKey));
        }
        let user = authenticate(&self.users, authorization)?;
        if self.property_is_true(property::BASIC_AUTH_RESTRICTION_ENFORCE)
            && !user.web_service_access_only
            && !user.has_role(BASIC_AUTH_ROLE)
        {
            return Err(SnError::basic_auth_restricted());
        }
        Ok((user.clone(), Method::Basic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, pw: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
        )
    }

    fn state() -> AuthState {
        AuthState::from_config(&EmulatorConfig {
            users: vec![
                User::new("admin", "admin", &["admin"]),
                User::new("wsao", "pw", &["itil"]).web_service_only(),
                User::new("kept", "pw", &["itil", BASIC_AUTH_ROLE]),
            ],
            ..EmulatorConfig::default()
        })
    }

    #[test]
    fn basic_restriction_lets_only_flagged_accounts_through() {
        let mut s = state();
        assert!(s.identify(Some(&basic("admin", "admin")), None).is_ok());
        s.properties.insert(
            property::BASIC_AUTH_RESTRICTION_ENFORCE.into(),
            "true".into(),
        );
        let refused = s
            .identify(Some(&basic("admin", "admin")), None)
            .unwrap_err();
        assert_eq!(refused.message, "User is not authenticated");
        assert!(s.identify(Some(&basic("wsao", "pw")), None).is_ok());
        assert!(s.identify(Some(&basic("kept", "pw")), None).is_ok());
    }

    #[test]
    fn cli_specs() {
        let c: OAuthClient = "id:sec:bot".parse().unwrap();
        assert_eq!(c.application_user.as_deref(), Some("bot"));
        let c: OAuthClient = "id:sec".parse().unwrap();
        assert_eq!(
            (c.client_secret.as_str(), c.application_user),
            ("sec", None)
        );
        assert!("id".parse::<OAuthClient>().is_err());
        let k: ApiKey = "a:b:agent".parse().unwrap();
        assert_eq!((k.key.as_str(), k.user.as_str()), ("a:b", "agent"));
        assert!("nouser:".parse::<ApiKey>().is_err());
    }

    #[test]
    fn expired_bearer_is_refused() {
        let mut s = state();
        s.access_tokens.insert(
            "t".into(),
            Grant {
                user: "admin".into(),
                client_id: "c".into(),
                scope: "useraccount".into(),
                expires_at: Instant::now() + Duration::from_secs(60),
            },
        );
        assert_eq!(
            s.identify(Some("Bearer t"), None).unwrap().1,
            Method::Bearer
        );
        s.expire_tokens(false);
        assert!(s.identify(Some("Bearer t"), None).is_err());
    }
}
