//! Routing rules: per team, ordered by `position`; `when` conditions decide, `then` acts
//! (forwards, exclusions, severity and attributes, discard, delay; `snowbound_core::routing`).
//! Rules act on incidents as they open and change from now on; saving a rule does not
//! sweep existing incidents. The routing history is what they did.

use std::sync::Arc;

use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use snowbound_core::checks::checked_name;
use snowbound_core::new_id;
use snowbound_core::routing::{
    validate_actions, validate_conditions, Actions, Conditions, RoutingRule,
};
use snowbound_store::{RuleFiring, Store, StoreError};
use uuid::Uuid;

use crate::audit::{snapshot, AuditService};
use crate::caller::Caller;
use crate::error::{ServiceError, ServiceResult};
use crate::lookups::{Changed, Lookups};
use crate::scope::{gone_is_fine, named, require_team, visible};

const MAX_TARGETS: usize = 50;
const HISTORY_DEFAULT: u32 = 100;
const HISTORY_MAX: u32 = 1000;

/// A rule as the caller wants it (new, or the whole rule after a change).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub team_id: Uuid,
    pub name: String,
    /// Default: after the team's last rule.
    #[serde(default)]
    pub position: Option<i64>,
    #[serde(default)]
    pub when: Conditions,
    pub then: Actions,
}

impl From<&RoutingRule> for RuleInput {
    fn from(rule: &RoutingRule) -> Self {
        RuleInput {
            team_id: rule.team_id,
            name: rule.name.clone(),
            position: Some(rule.position),
            when: rule.when.clone(),
            then: rule.then.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RuleService {
    store: Arc<dyn Store>,
    /// Routing is cached per team; every change of a rule is told.
    lookups: Arc<Lookups>,
    audit: AuditService,
}

impl RuleService {
    pub fn new(store: Arc<dyn Store>, lookups: Arc<Lookups>) -> Self {
        RuleService {
            audit: AuditService::new(store.clone()),
            store,
            lookups,
        }
    }

    async fn changed(&self, team: Uuid) {
        self.lookups
            .changed(&*self.store, Changed::Rules { team })
            .await;
    }

    /// The rule if the caller may see it; other teams' rules do not exist.
    pub async fn visible(&self, caller: &Caller, id: Uuid) -> ServiceResult<RoutingRule> {
        visible(caller, self.store.get_routing_rule(id)).await
    }

    /// The rule when it belongs to `team` (for pages of one team).
    pub async fn of_team(
        &self,
        caller: &Caller,
        team: Uuid,
        id: Uuid,
    ) -> ServiceResult<RoutingRule> {
        match self.visible(caller, id).await? {
            rule if rule.team_id == team => Ok(rule),
            _ => Err(ServiceError::not_found("routing rule")),
        }
    }

    /// In the store's order; `team` narrows to one team.
    pub async fn list(
        &self,
        caller: &Caller,
        team: Option<Uuid>,
    ) -> ServiceResult<Vec<RoutingRule>> {
        let teams = match team {
            Some(team) if !caller.sees_team(team) => return Ok(Vec::new()),
            Some(team) => Some(vec![team]),
            None => caller.team_filter(),
        };
        Ok(self.store.list_routing_rules(teams.as_deref()).await?)
    }

    /// The team's rules in the order [`snowbound_core::routing::evaluate`] uses.
    pub async fn ordered(&self, caller: &Caller, team: Uuid) -> ServiceResult<Vec<RoutingRule>> {
        let mut rules = self.list(caller, Some(team)).await?;
        rules.sort_by_key(|r| (r.position, r.created_at, r.id));
        Ok(rules)
    }

    pub async fn create(&self, caller: &Caller, input: RuleInput) -> ServiceResult<RoutingRule> {
        let name = self.checked(caller, &input).await?;
        let position = match input.position {
            Some(position) => position,
            None => self
                .store
                .list_routing_rules(Some(&[input.team_id]))
                .await?
                .iter()
                .map(|r| r.position + 1)
                .max()
                .unwrap_or(0),
        };
        let now = Utc::now();
        let rule = RoutingRule {
            id: new_id(),
            team_id: input.team_id,
            name,
            position,
            when: input.when,
            then: input.then,
            created_at: now,
            updated_at: now,
        };
        self.store.create_routing_rule(&rule).await?;
        self.changed(rule.team_id).await;
        self.audit
            .record(
                &caller.actor,
                "rule",
                rule.id,
                "create",
                (&Value::Null, &snapshot(&rule)),
                &[],
            )
            .await;
        Ok(rule)
    }

    /// Replaces the rule by `input`, validated as a whole like a new rule.
    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        input: RuleInput,
    ) -> ServiceResult<RoutingRule> {
        let current = self.visible(caller, id).await?;
        if input.team_id != current.team_id {
            return Err(ServiceError::invalid(
                "team_id",
                "a rule stays in its team; create one in the other team instead",
            ));
        }
        let name = self.checked(caller, &input).await?;
        let before = snapshot(&current);
        let rule = RoutingRule {
            name,
            position: input.position.unwrap_or(current.position),
            when: input.when,
            then: input.then,
            updated_at: Utc::now(),
            ..current
        };
        named(self.store.update_routing_rule(&rule).await, "routing rule")?;
        self.changed(rule.team_id).await;
        self.audit
            .record(
                &caller.actor,
                "rule",
                id,
                "update",
                (&before, &snapshot(&rule)),
                &[],
            )
            .await;
        Ok(rule)
    }

    /// The team's rules in the order of `rule_ids` (each of them exactly once), in one
    /// transaction: another writer sees the old order or the new one, never a mix.
    pub async fn reorder(
        &self,
        caller: &Caller,
        team_id: Uuid,
        rule_ids: &[Uuid],
    ) -> ServiceResult<Vec<RoutingRule>> {
        require_team(&*self.store, caller, team_id).await?;
        let order: Vec<Uuid> = self
            .ordered(caller, team_id)
            .await?
            .iter()
            .map(|r| r.id)
            .collect();
        match self.store.reorder_routing_rules(team_id, rule_ids).await {
            Ok(()) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(ServiceError::invalid(
                    "rule_ids",
                    "must list every rule of the team exactly once",
                ))
            }
            Err(e) => return Err(e.into()),
        }
        // Recorded against the team: the order is the team's, not one rule's.
        self.audit
            .record(
                &caller.actor,
                "rule",
                team_id,
                "reorder",
                (&json!({"order": order}), &json!({"order": rule_ids})),
                &[],
            )
            .await;
        self.ordered(caller, team_id).await
    }

    /// What rules did, newest first, within the caller's teams; `team` narrows to one.
    pub async fn history(
        &self,
        caller: &Caller,
        team: Option<Uuid>,
        limit: Option<u32>,
    ) -> ServiceResult<Vec<RuleFiring>> {
        let teams = match team {
            Some(team) if !caller.sees_team(team) => return Ok(Vec::new()),
            Some(team) => Some(vec![team]),
            None => caller.team_filter(),
        };
        let limit = limit.unwrap_or(HISTORY_DEFAULT).clamp(1, HISTORY_MAX);
        Ok(self.store.routing_history(teams.as_deref(), limit).await?)
    }

    /// Moves the rule to `position`; a rule already there is not written.
    pub async fn set_position(
        &self,
        caller: &Caller,
        id: Uuid,
        position: i64,
    ) -> ServiceResult<RoutingRule> {
        let current = self.visible(caller, id).await?;
        if current.position == position {
            return Ok(current);
        }
        let input = RuleInput {
            position: Some(position),
            ..RuleInput::from(&current)
        };
        self.update(caller, id, input).await
    }

    pub async fn delete(&self, caller: &Caller, id: Uuid) -> ServiceResult<()> {
        let rule = self.visible(caller, id).await?;
        gone_is_fine(self.store.delete_routing_rule(id).await)?;
        self.changed(rule.team_id).await;
        self.audit
            .record(
                &caller.actor,
                "rule",
                id,
                "delete",
                (&snapshot(&rule), &Value::Null),
                &[],
            )
            .await;
        Ok(())
    }

    async fn checked(&self, caller: &Caller, input: &RuleInput) -> ServiceResult<String> {
        let name = checked_name(&input.name)?;
        require_team(&*self.store, caller, input.team_id).await?;
        let mut errors = validate_conditions(&input.when);
        errors.extend(validate_actions(&input.then));
        if !errors.is_empty() {
            return Err(ServiceError::InvalidFields(errors));
        }
        self.check_sources(input.team_id, &input.when).await?;
        self.check_targets(input.team_id, &input.then).await?;
        Ok(name)
    }

    /// `when.source_ids` names sources of the rule's team: another team's incidents never
    /// reach its rules.
    async fn check_sources(&self, team_id: Uuid, when: &Conditions) -> ServiceResult<()> {
        let Some(ids) = &when.source_ids else {
            return Ok(());
        };
        if ids.len() > MAX_TARGETS {
            return Err(ServiceError::invalid(
                "when.source_ids",
                format!("names more than {MAX_TARGETS} sources"),
            ));
        }
        let sources = self.store.list_sources(Some(&[team_id])).await?;
        for (index, id) in ids.iter().enumerate() {
            if !sources.iter().any(|s| s.id == *id) {
                return Err(ServiceError::invalid(
                    format!("when.source_ids[{index}]"),
                    format!("no source {id} of the rule's team"),
                ));
            }
        }
        Ok(())
    }

    /// A rule may only name integrations that serve its team: forwarding elsewhere would
    /// leak the incident to another team, and excluding elsewhere means nothing.
    async fn check_targets(&self, team_id: Uuid, then: &Actions) -> ServiceResult<()> {
        // A rule that only sets fields is useful: it chooses the assignment group.
        if then.is_empty() {
            return Err(ServiceError::invalid(
                "then",
                "must forward_to or exclude_from at least one integration, set_fields, \
                 set_severity, set_attributes, discard, delay_seconds or stop",
            ));
        }
        let integrations = self.store.list_integrations().await?;
        for (list, ids) in [
            ("forward_to", &then.forward_to),
            ("exclude_from", &then.exclude_from),
        ] {
            if ids.len() > MAX_TARGETS {
                return Err(ServiceError::invalid(
                    format!("then.{list}"),
                    format!("names more than {MAX_TARGETS} integrations"),
                ));
            }
            for (index, id) in ids.iter().enumerate() {
                let serves = integrations
                    .iter()
                    .any(|r| r.integration.id == *id && r.integration.serves_team(team_id));
                if !serves {
                    return Err(ServiceError::invalid(
                        format!("then.{list}[{index}]"),
                        format!("no integration {id} serves the rule's team"),
                    ));
                }
            }
        }
        Ok(())
    }
}
