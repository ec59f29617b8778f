//! The one scoped lookup: an object the caller may not see answers exactly like one that
//! does not exist, and a store's "not found" becomes the service's, named.

use std::future::Future;

use snowbound_core::routing::RoutingRule;
use snowbound_core::source::Source;
use snowbound_core::{Incident, Team};
use snowbound_store::{IntegrationRecord, StoreError};

use crate::caller::Caller;
use crate::error::{ServiceError, ServiceResult};

/// An object that belongs to teams, and the word for it in "no such …".
pub trait Scoped {
    const WHAT: &'static str;
    fn visible_to(&self, caller: &Caller) -> bool;
}

impl Scoped for Incident {
    const WHAT: &'static str = "incident";
    fn visible_to(&self, caller: &Caller) -> bool {
        caller.sees_team(self.team_id)
    }
}

impl Scoped for Source {
    const WHAT: &'static str = "source";
    fn visible_to(&self, caller: &Caller) -> bool {
        caller.sees_team(self.team_id)
    }
}

impl Scoped for RoutingRule {
    const WHAT: &'static str = "routing rule";
    fn visible_to(&self, caller: &Caller) -> bool {
        caller.sees_team(self.team_id)
    }
}

impl Scoped for IntegrationRecord {
    const WHAT: &'static str = "integration";
    fn visible_to(&self, caller: &Caller) -> bool {
        caller.sees_integration(&self.integration)
    }
}

impl Scoped for Team {
    const WHAT: &'static str = "team";
    fn visible_to(&self, caller: &Caller) -> bool {
        caller.sees_team(self.id)
    }
}

/// The object `read` returns if `caller` may see it, else `NotFound` naming it.
pub async fn visible<T: Scoped>(
    caller: &Caller,
    read: impl Future<Output = Result<T, StoreError>>,
) -> ServiceResult<T> {
    match read.await {
        Ok(object) if object.visible_to(caller) => Ok(object),
        Ok(_) => Err(ServiceError::not_found(T::WHAT)),
        Err(e) => Err(e.or_not_found(T::WHAT)),
    }
}

pub trait OrNotFound {
    /// The store's `NotFound` as the service's, naming `what`.
    fn or_not_found(self, what: &'static str) -> ServiceError;
}

impl OrNotFound for StoreError {
    fn or_not_found(self, what: &'static str) -> ServiceError {
        match self {
            StoreError::NotFound => ServiceError::not_found(what),
            other => ServiceError::Store(other),
        }
    }
}

/// A write on an object that may vanish meanwhile: its "not found" names it.
pub fn named<T>(result: Result<T, StoreError>, what: &'static str) -> ServiceResult<T> {
    result.map_err(|e| e.or_not_found(what))
}

/// A delete: an object gone already is deleted, which is what was asked.
pub fn gone_is_fine(result: Result<(), StoreError>) -> ServiceResult<()> {
    match result {
        Ok(()) | Err(StoreError::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Whether `team` exists and the caller may see it: commands naming a team the caller
/// cannot see are refused as if the team did not exist.
pub async fn team_exists(
    store: &dyn snowbound_store::Store,
    caller: &Caller,
    team: uuid::Uuid,
) -> ServiceResult<bool> {
    if !caller.sees_team(team) {
        return Ok(false);
    }
    match store.get_team(team).await {
        Ok(_) => Ok(true),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// [`team_exists`] as the refusal commands give: `team_id: no such team`.
pub async fn require_team(
    store: &dyn snowbound_store::Store,
    caller: &Caller,
    team: uuid::Uuid,
) -> ServiceResult<()> {
    if team_exists(store, caller, team).await? {
        Ok(())
    } else {
        Err(ServiceError::invalid("team_id", "no such team"))
    }
}
