//! Web UI accounts: users and their login sessions.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    /// argon2 PHC string; never leaves the server.
    #[serde(skip)]
    pub password_hash: String,
    pub is_admin: bool,
    /// Teams a non-admin user sees; ignored for admins, who see every team.
    pub team_ids: Vec<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// A login. `id` is the SHA-256 (hex) of the token in the cookie, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user_id: Uuid,
    /// Per-session token every form must echo back.
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}
