//! Web UI accounts, for the binary (`SNOWBOUND_ADMIN_EMAIL`/`SNOWBOUND_ADMIN_PASSWORD`,
//! `snowbound demo`) and tests: the services' rules, under the path they always had.

pub use snowbound_services::accounts::{
    burn_verify, check_email, check_new_account, check_password, ensure_first_admin, hash_password,
    new_user, verify_password, FirstAdminError, MIN_PASSWORD_CHARS,
};
