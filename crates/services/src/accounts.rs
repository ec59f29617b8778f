//! Web UI accounts: argon2 password hashes, the first admin, logging in, and the Users
//! page's commands. Refusals are sentences for the user (the Users page shows them as
//! they are), naming the form's field.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::Utc;
use serde_json::Value;
use snowbound_core::login_limits::{wait_message, LimitedBy, LoginLimits};
use snowbound_core::new_id;
use snowbound_core::validate::{check_text, limits};
use snowbound_store::{Store, StoreError, User};
use uuid::Uuid;

use crate::audit::{snapshot, AuditService};
use crate::error::{ServiceError, ServiceResult};
use crate::scope::{gone_is_fine, named};

/// Shorter passwords are refused: the UI can reach ServiceNow credentials.
pub const MIN_PASSWORD_CHARS: usize = 10;

pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters hashes any input")
        .to_string()
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Spends the time of one verification, so an unknown email answers as slowly as a
/// wrong password and the login form does not reveal which accounts exist.
pub fn burn_verify(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let hash = DUMMY.get_or_init(|| hash_password("not a real password"));
    let _ = verify_password(password, hash);
}

/// Why an email/password pair cannot become an account; a sentence for the user.
pub fn check_new_account(email: &str, password: &str) -> Result<(), String> {
    check_email(email)?;
    check_password(password)
}

pub fn check_email(email: &str) -> Result<(), String> {
    let email = email.trim();
    if email.len() < 3 || !email.contains('@') || email.contains(char::is_whitespace) {
        return Err("Enter an email address such as ada@example.com.".into());
    }
    check_text(email, limits::EMAIL).map_err(|problem| format!("The email address {problem}."))
}

pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "The password needs at least {MIN_PASSWORD_CHARS} characters."
        ));
    }
    Ok(())
}

pub fn new_user(email: &str, password: &str, is_admin: bool, team_ids: Vec<Uuid>) -> User {
    User {
        id: new_id(),
        email: email.trim().to_owned(),
        password_hash: hash_password(password),
        is_admin,
        team_ids,
        created_at: Utc::now(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FirstAdminError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates the admin unless some user already exists. Answers whether it was created.
pub async fn ensure_first_admin(
    store: &dyn Store,
    email: &str,
    password: &str,
) -> Result<bool, FirstAdminError> {
    check_new_account(email, password).map_err(FirstAdminError::Invalid)?;
    if store.count_users().await? > 0 {
        return Ok(false);
    }
    let user = new_user(email, password, true, Vec::new());
    if !store.create_first_user(&user).await? {
        return Ok(false);
    }
    // Made by the deployment's environment, not by anybody signed in.
    crate::audit::record(
        store,
        "environment",
        ("user", user.id.to_string()),
        "create",
        (&Value::Null, &snapshot(&user)),
        &[("password", false, true)],
    )
    .await;
    Ok(true)
}

/// A user the Users page creates.
pub struct NewUser {
    pub email: String,
    pub password: String,
    pub is_admin: bool,
    pub team_ids: Vec<Uuid>,
}

/// A change of who a user is: `None` keeps the value.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessChange {
    pub is_admin: Option<bool>,
    pub team_ids: Option<Vec<Uuid>>,
}

/// What the one-time setup page did.
pub enum Setup {
    Created(User),
    /// Someone else set Snowbound up first.
    AlreadyDone,
}

/// Accounts of the web UI. The pages decide who may call what (only administrators
/// manage users); these keep the rules of the accounts themselves.
#[derive(Clone)]
pub struct AccountService {
    store: Arc<dyn Store>,
    login_limits: LoginLimits,
    audit: AuditService,
}

impl AccountService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        AccountService {
            audit: AuditService::new(store.clone()),
            store,
            login_limits: LoginLimits::default(),
        }
    }

    /// The user whose email and password these are, asked from `client` (the address
    /// the login came from, when known). An email no account can have (a NUL, too long:
    /// `check_email` refused it at creation) is simply no account: it never reaches the
    /// database, which could not even compare it (PostgreSQL refuses NUL).
    ///
    /// Wrong passwords are counted per account and per address, whether the account
    /// exists or not (so a lock says nothing about which emails are real). While either
    /// waits, even the right password answers [`ServiceError::RateLimited`], unchecked:
    /// otherwise guessing would go on, only with the answers hidden.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> ServiceResult<Option<User>> {
        let now = Utc::now();
        let keys = login_keys(email, client);
        let names: Vec<String> = keys.iter().map(|(key, _)| key.clone()).collect();
        if let Some(until) = self.store.login_locked_until(&names, now).await? {
            burn_verify(password);
            return Err(login_waits(until - now));
        }
        let user = if check_text(email.trim(), limits::EMAIL).is_ok() {
            self.store.user_by_email(email).await?
        } else {
            None
        };
        match user {
            Some(user) if verify_password(password, &user.password_hash) => {
                // Only the account's count: one good login must not wipe what an
                // address shared with a guesser has earned.
                self.store.clear_login_failures(Some(&names[0])).await?;
                return Ok(Some(user));
            }
            Some(_) => {}
            None => burn_verify(password),
        }
        let locked = self
            .store
            .count_login_failure(&keys, &self.login_limits, now)
            .await?;
        match locked {
            Some(until) => Err(login_waits(until - now)),
            None => Ok(None),
        }
    }

    /// Ends the waits of one account (by email) or of every account and address.
    /// How many counts went.
    pub async fn reset_login_limits(&self, email: Option<&str>) -> ServiceResult<u64> {
        let key = email.map(account_key);
        Ok(self.store.clear_login_failures(key.as_deref()).await?)
    }

    pub async fn setup_needed(&self) -> ServiceResult<bool> {
        Ok(self.store.count_users().await? == 0)
    }

    /// The first administrator, from the setup page.
    pub async fn setup(&self, email: &str, password: &str) -> ServiceResult<Setup> {
        if let Err(problem) = check_new_account(email, password) {
            let field = if check_email(email).is_err() {
                "email"
            } else {
                "password"
            };
            return Err(ServiceError::invalid(field, problem));
        }
        let user = new_user(email, password, true, Vec::new());
        if self.store.create_first_user(&user).await? {
            self.audit
                .record(
                    &user.email,
                    "user",
                    user.id,
                    "create",
                    (&Value::Null, &snapshot(&user)),
                    &[("password", false, true)],
                )
                .await;
            Ok(Setup::Created(user))
        } else {
            Ok(Setup::AlreadyDone)
        }
    }

    /// `actor` names who creates it in the audit trail.
    pub async fn create(&self, actor: &str, new: NewUser) -> ServiceResult<User> {
        check_email(&new.email).map_err(|m| ServiceError::invalid("email", m))?;
        check_password(&new.password).map_err(|m| ServiceError::invalid("password", m))?;
        self.check_teams_exist(&new.team_ids).await?;
        let user = new_user(&new.email, &new.password, new.is_admin, new.team_ids);
        self.store.create_user(&user).await.map_err(|e| match e {
            StoreError::Conflict { .. } => {
                ServiceError::invalid("email", "A user with this email exists already.")
            }
            other => other.into(),
        })?;
        self.audit
            .record(
                actor,
                "user",
                user.id,
                "create",
                (&Value::Null, &snapshot(&user)),
                &[("password", false, true)],
            )
            .await;
        Ok(user)
    }

    async fn check_teams_exist(&self, team_ids: &[Uuid]) -> ServiceResult<()> {
        let known: Vec<Uuid> = self
            .store
            .list_teams()
            .await?
            .iter()
            .map(|t| t.id)
            .collect();
        if team_ids.iter().any(|t| !known.contains(t)) {
            return Err(ServiceError::invalid(
                "team_ids",
                "A chosen team no longer exists.",
            ));
        }
        Ok(())
    }

    /// An administrator changes a user's admin flag and teams; what `change` leaves
    /// `None` stays. `by` is the user doing it (none for the admin token): nobody takes
    /// their own admin flag away, so there is always an administrator left.
    pub async fn update_access(
        &self,
        actor: &str,
        by: Option<Uuid>,
        id: Uuid,
        change: AccessChange,
    ) -> ServiceResult<User> {
        let mut user = self.get(id).await?;
        let before = snapshot(&user);
        if let Some(is_admin) = change.is_admin {
            if by == Some(id) && !is_admin {
                return Err(ServiceError::Conflict {
                    code: "conflict",
                    message: "You cannot take away your own admin rights.".into(),
                    field: Some("is_admin"),
                });
            }
            user.is_admin = is_admin;
        }
        if let Some(team_ids) = change.team_ids {
            self.check_teams_exist(&team_ids).await?;
            user.team_ids = team_ids;
        }
        named(
            self.store
                .update_user_access(id, user.is_admin, &user.team_ids)
                .await,
            "user",
        )?;
        self.audit
            .record(
                actor,
                "user",
                id,
                "update_access",
                (&before, &snapshot(&user)),
                &[],
            )
            .await;
        Ok(user)
    }

    pub async fn get(&self, id: Uuid) -> ServiceResult<User> {
        named(self.store.get_user(id).await, "user")
    }

    pub async fn list(&self) -> ServiceResult<Vec<User>> {
        Ok(self.store.list_users().await?)
    }

    /// Ends every session of the account but `keep` (an admin resetting their own
    /// password stays logged in where they did it), in the same transaction.
    pub async fn reset_password(
        &self,
        actor: &str,
        id: Uuid,
        password: &str,
        keep: Option<&str>,
    ) -> ServiceResult<()> {
        check_password(password).map_err(|m| ServiceError::invalid("password", m))?;
        let result = self
            .store
            .set_user_password(id, &hash_password(password), keep)
            .await;
        named(result, "user")?;
        self.audit
            .record(
                actor,
                "user",
                id,
                "reset_password",
                (&Value::Null, &Value::Null),
                &[("password", true, true)],
            )
            .await;
        Ok(())
    }

    /// `by` is the administrator deleting: there is always one left, the one doing it.
    pub async fn delete(&self, actor: &str, by: Uuid, id: Uuid) -> ServiceResult<()> {
        if id == by {
            return Err(ServiceError::Conflict {
                code: "conflict",
                message: "You cannot delete yourself.".into(),
                field: None,
            });
        }
        let before = match self.store.get_user(id).await {
            Ok(user) => Some(user),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        gone_is_fine(self.store.delete_user(id).await)?;
        if let Some(before) = before {
            self.audit
                .record(
                    actor,
                    "user",
                    id,
                    "delete",
                    (&snapshot(&before), &Value::Null),
                    &[],
                )
                .await;
        }
        Ok(())
    }
}

/// Folded as `user_by_email` folds, so "Ada@" and "ada@" count as one account, and
/// hashed: whatever was typed (a NUL, a megabyte) becomes a key the database can hold.
fn account_key(email: &str) -> String {
    let digest = Sha256::digest(email.trim().to_ascii_lowercase().as_bytes());
    format!("account:{}", hex::encode(digest))
}

/// The account's key first, then the address's. An IPv6 client owns at least a /64, so
/// that is what one address is; an IPv4-mapped address counts as its IPv4 one.
fn login_keys(email: &str, client: Option<IpAddr>) -> Vec<(String, LimitedBy)> {
    let mut keys = vec![(account_key(email), LimitedBy::Account)];
    let address = match client.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(ip)) => Some(ip.to_string()),
        Some(IpAddr::V6(ip)) => {
            let prefix = u128::from(ip) & !((1_u128 << 64) - 1);
            Some(format!("{}/64", Ipv6Addr::from(prefix)))
        }
        None => None,
    };
    keys.extend(address.map(|a| (format!("address:{a}"), LimitedBy::Address)));
    keys
}

fn login_waits(wait: chrono::Duration) -> ServiceError {
    ServiceError::RateLimited {
        retry_after: wait.to_std().unwrap_or_default(),
        message: wait_message(wait),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password() {
        let hash = hash_password("correct horse battery");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn new_accounts_need_an_email_and_a_long_password() {
        assert!(check_new_account("ada@example.com", "0123456789").is_ok());
        assert!(check_new_account("ada", "0123456789").is_err());
        assert!(check_new_account("ada@example.com", "short").is_err());
        assert!(check_new_account("a\u{0}@example.com", "0123456789").is_err());
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(check_new_account(&long, "0123456789").is_err());
    }

    #[test]
    fn logins_count_per_folded_email_and_per_address_or_ipv6_prefix() {
        let keys = |client: &str| {
            login_keys(" Ada@Example.com", Some(client.parse().unwrap()))
                .into_iter()
                .map(|(key, _)| key)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys("192.0.2.7"),
            [account_key("ada@example.com").as_str(), "address:192.0.2.7"]
        );
        assert_eq!(
            account_key("ADA@example.com "),
            account_key("ada@example.com")
        );
        assert!(account_key("a\u{0}b").len() < 80);
        assert_eq!(keys("::ffff:192.0.2.7")[1], "address:192.0.2.7");
        assert_eq!(keys("2001:db8:1:2:aaaa::1")[1], "address:2001:db8:1:2::/64");
        assert_eq!(keys("2001:db8:1:2:bbbb::9")[1], "address:2001:db8:1:2::/64");
        assert_eq!(login_keys("ada@example.com", None).len(), 1);
    }
}
