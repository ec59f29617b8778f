//! Teams and team-scoped tokens. Creating either is the admin's; a token sees its teams.

use std::sync::Arc;

use chrono::Utc;
use rand::RngCore;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use snowbound_core::checks::checked_name;
use snowbound_core::{new_id, Team};
use snowbound_store::{ApiToken, Store, StoreError};
use uuid::Uuid;

use crate::audit::AuditService;
use crate::caller::{Caller, Scope};
use crate::error::{ServiceError, ServiceResult};
use crate::scope::{named, visible};

/// Prefix of generated team tokens, so a leaked one is recognisable in logs and scanners.
pub const TOKEN_PREFIX: &str = "sbt_";

/// SHA-256 of a bearer token: what is stored and compared, never the token itself.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random token (256 bits) for a team; only its hash is stored.
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

pub struct NewToken {
    pub name: String,
    pub team_ids: Vec<Uuid>,
}

/// A token just made: the only time the token itself is known.
pub struct CreatedToken {
    pub record: ApiToken,
    pub token: String,
}

#[derive(Clone)]
pub struct TeamService {
    store: Arc<dyn Store>,
    audit: AuditService,
}

impl TeamService {
    pub fn new(store: Arc<dyn Store>) -> Self {
        TeamService {
            audit: AuditService::new(store.clone()),
            store,
        }
    }

    pub async fn create(&self, caller: &Caller, name: &str) -> ServiceResult<Team> {
        caller.require_admin()?;
        let team = Team {
            id: new_id(),
            name: checked_name(name)?,
            created_at: Utc::now(),
        };
        self.store.create_team(&team).await.map_err(|e| match e {
            StoreError::Conflict { .. } => ServiceError::Conflict {
                code: "conflict",
                message: "a team with this name exists".into(),
                field: Some("name"),
            },
            other => other.into(),
        })?;
        Ok(team)
    }

    /// The teams the caller may see.
    pub async fn list(&self, caller: &Caller) -> ServiceResult<Vec<Team>> {
        Ok(self
            .store
            .list_teams()
            .await?
            .into_iter()
            .filter(|t| caller.sees_team(t.id))
            .collect())
    }

    pub async fn visible(&self, caller: &Caller, id: Uuid) -> ServiceResult<Team> {
        visible(caller, self.store.get_team(id)).await
    }

    pub async fn create_token(
        &self,
        caller: &Caller,
        new: NewToken,
    ) -> ServiceResult<CreatedToken> {
        caller.require_admin()?;
        let name = checked_name(&new.name)?;
        if new.team_ids.is_empty() {
            return Err(ServiceError::invalid(
                "team_ids",
                "a token needs at least one team",
            ));
        }
        let mut team_ids = Vec::new();
        for team in new.team_ids {
            match self.store.get_team(team).await {
                Ok(_) => {}
                Err(StoreError::NotFound) => {
                    return Err(ServiceError::invalid(
                        "team_ids",
                        format!("no such team {team}"),
                    ))
                }
                Err(e) => return Err(e.into()),
            }
            if !team_ids.contains(&team) {
                team_ids.push(team);
            }
        }
        let token = generate_token();
        let record = ApiToken {
            id: new_id(),
            name,
            hash: hex::encode(hash_token(&token)),
            team_ids,
            created_at: Utc::now(),
        };
        self.store.create_token(&record).await?;
        // The hash stays out: it is as good as the token for finding who holds it.
        let after = json!({"name": record.name, "team_ids": record.team_ids});
        self.audit
            .record(
                &caller.actor,
                "token",
                record.id,
                "create",
                (&Value::Null, &after),
                &[("token", false, true)],
            )
            .await;
        Ok(CreatedToken { record, token })
    }

    /// Active tokens with their names and teams (admin only: a team token revoking
    /// others' tokens of a shared team would be a way to lock people out).
    pub async fn list_tokens(&self, caller: &Caller) -> ServiceResult<Vec<ApiToken>> {
        caller.require_admin()?;
        Ok(self.store.list_tokens().await?)
    }

    /// Every request looks its token up afresh, so the token fails from the next request on.
    pub async fn revoke_token(&self, caller: &Caller, id: Uuid) -> ServiceResult<()> {
        caller.require_admin()?;
        named(self.store.revoke_token(id).await, "token")?;
        self.audit
            .record(
                &caller.actor,
                "token",
                id,
                "revoke",
                (&Value::Null, &Value::Null),
                &[("token", true, false)],
            )
            .await;
        Ok(())
    }

    /// The caller a bearer token stands for: the admin token (compared as SHA-256 in
    /// constant time by the caller of this) is not a stored token.
    pub async fn token_caller(&self, token_hash: &[u8; 32]) -> ServiceResult<Option<Caller>> {
        Ok(self
            .store
            .token_by_hash(&hex::encode(token_hash))
            .await?
            .map(|token| Caller {
                actor: token.name,
                scope: Scope::Teams(token.team_ids),
            }))
    }
}
