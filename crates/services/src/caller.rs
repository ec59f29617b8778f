//! Who is asking: the admin sees everything; a team token or a team member sees only its
//! teams. Objects of other teams are "not found", so a caller cannot even learn that they
//! exist ([`crate::scope::visible`]).

use snowbound_core::Integration;
use uuid::Uuid;

use crate::error::{ServiceError, ServiceResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Admin,
    Teams(Vec<Uuid>),
}

#[derive(Debug, Clone)]
pub struct Caller {
    /// Named in timeline entries: "admin", a token's name, a user's email, a source.
    pub actor: String,
    pub scope: Scope,
}

impl Caller {
    pub fn admin() -> Self {
        Caller {
            actor: "admin".into(),
            scope: Scope::Admin,
        }
    }

    pub fn is_admin(&self) -> bool {
        self.scope == Scope::Admin
    }

    pub fn sees_team(&self, team_id: Uuid) -> bool {
        match &self.scope {
            Scope::Admin => true,
            Scope::Teams(teams) => teams.contains(&team_id),
        }
    }

    /// A team token sees the integrations that serve any of its teams…
    pub fn sees_integration(&self, integration: &Integration) -> bool {
        integration
            .all_team_ids()
            .into_iter()
            .any(|team| self.sees_team(team))
    }

    /// …but changes only those whose root team is one of its teams.
    pub fn owns_integration(&self, integration: &Integration) -> bool {
        self.sees_team(integration.root_team_id)
    }

    /// `None` = no restriction, the store's convention for "every team".
    pub fn team_filter(&self) -> Option<Vec<Uuid>> {
        match &self.scope {
            Scope::Admin => None,
            Scope::Teams(teams) => Some(teams.clone()),
        }
    }

    pub fn require_admin(&self) -> ServiceResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden("only the admin token may do this"))
        }
    }
}
