//! Web UI accounts: argon2 password hashes and the first admin. Used by the login pages
//! and by the binary (`SNOWBOUND_ADMIN_EMAIL`/`SNOWBOUND_ADMIN_PASSWORD`, `snowbound demo`).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::Utc;
use snowbound_core::new_id;
use snowbound_store::{Store, StoreError, User};
use uuid::Uuid;

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
    snowbound_core::validate::check_text(email, snowbound_core::validate::limits::EMAIL)
        .map_err(|problem| format!("The email address {problem}."))
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
    Ok(store.create_first_user(&user).await?)
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
}
