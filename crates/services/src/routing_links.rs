//! Turns the routing rules' decision into links and timeline entries, when an incident
//! opens and after each change. What re-evaluation means, per forwarding mode, for an
//! integration the incident is **not yet linked to** (a link, once made, is never undone
//! by a rule: its ServiceNow record exists and must keep following or stay frozen):
//!
//! - `always`: linked at open unless a rule excludes it; after a change, linked once no
//!   rule excludes it any more (an excluded minor incident escalated to critical).
//! - `always_after_forwarding`: linked when a matching rule forwards to it.
//! - `only_on_forwarding`: linked with a frozen snapshot when a matching rule forwards to
//!   it. Already linked = not re-forwarded: re-sending a snapshot on every change would
//!   be "follows updates" by the back door. Only a person's forward re-sends.
//!
//! A resolved incident gets no new links from rules: opening a ServiceNow record just
//! to resolve it helps nobody. A person may still forward it.
//!
//! Each rule fires once per incident (`Store::fired_rules`); what it did goes to the
//! timeline and, per rule, to the routing history in the incident's own write. A rule's
//! `delay_seconds` holds the links made while it fires (`always` integrations' too, or a
//! flapping alert would still reach ServiceNow through them); a resolve before the delay
//! ends drops them unsent (`RoutingWrite::drop_held_at`).

use chrono::{DateTime, Utc};
use snowbound_core::forwarding::linked_when_opened;
use snowbound_core::routing::{
    evaluate, evaluate_open, Decision, Edit, RoutingRule, RuleAction, RuleRef,
};
use snowbound_core::{ForwardingMode, Incident, IncidentStatus, Integration, TimelineEntry};
use snowbound_store::{LinkHold, NewLink, RoutingWrite, RuleFiring, Store};
use uuid::Uuid;

use crate::error::ServiceResult;

/// What routing adds to an incident change.
#[derive(Debug)]
pub struct Routed {
    /// The incident as the firing rules left it (severity, attributes).
    pub incident: Incident,
    pub links: Vec<NewLink>,
    pub timeline: Vec<TimelineEntry>,
    pub routing: RoutingWrite,
    /// A rule discards the alert: nothing is to be written but its history row.
    pub discard: Option<RuleRef>,
    /// Which rule wrote which timeline entry, for the history's details.
    by_rule: Vec<(Uuid, String)>,
}

/// The integrations and rules routing needs for one team's incident.
pub struct RoutingContext {
    pub integrations: Vec<Integration>,
    pub rules: Vec<RoutingRule>,
}

impl RoutingContext {
    pub async fn load(store: &dyn Store, team_id: Uuid) -> ServiceResult<Self> {
        let integrations = store
            .list_integration_settings()
            .await?
            .into_iter()
            .filter(|i| i.serves_team(team_id))
            .collect();
        let rules = store.list_routing_rules(Some(&[team_id])).await?;
        Ok(RoutingContext {
            integrations,
            rules,
        })
    }

    fn integration(&self, id: Uuid) -> Option<&Integration> {
        self.integrations.iter().find(|i| i.id == id)
    }

    /// Links of a new incident: `always` integrations not excluded, plus rule forwards.
    /// Exclusions are written down so nobody wonders where the ServiceNow record is.
    pub fn at_open(&self, incident: &Incident, actor: &str, now: DateTime<Utc>) -> Routed {
        let decision = evaluate_open(&self.rules, incident, now);
        let mut routed = Routed::new(&decision);
        if let Some(rule) = &decision.discard {
            routed.discard = Some(rule.clone());
            return routed;
        }
        routed.edits(&decision, now);
        let excluded = decision.excluded_ids();
        for integration in linked_when_opened(incident.team_id, &self.integrations, &excluded) {
            routed.link(integration, None);
            routed.note(
                None,
                now,
                actor,
                "linked",
                format!(
                    "linked to {} (forwarding: always)",
                    integration.display_name
                ),
            );
        }
        for action in &decision.exclusions {
            if let Some(integration) = self
                .integration(action.integration_id)
                .filter(|i| i.forwarding == ForwardingMode::Always)
            {
                routed.note(
                    Some(action.rule_id),
                    now,
                    &rule_actor(&action.rule_name),
                    "excluded",
                    format!(
                        "kept out of {} by routing rule {}",
                        integration.display_name, action.rule_name
                    ),
                );
            }
        }
        self.forwards(&decision.forwards, &[], now, &mut routed);
        routed.finish(&decision, now);
        routed
    }

    /// After a change: the rules that have not fired for the incident yet (`fired` did),
    /// and new links for integrations it is not linked to yet.
    pub fn after_change(
        &self,
        incident: &Incident,
        linked: &[Uuid],
        fired: &[Uuid],
        now: DateTime<Utc>,
    ) -> Routed {
        let decision = evaluate(&self.rules, incident, now, fired);
        let mut routed = Routed::new(&decision);
        routed.edits(&decision, now);
        if decision.incident.status == IncidentStatus::Resolved {
            routed.routing.drop_held_at = Some(now);
            routed.finish(&decision, now);
            return routed;
        }
        let excluded = decision.excluded_ids();
        for integration in linked_when_opened(incident.team_id, &self.integrations, &excluded)
            .filter(|i| !linked.contains(&i.id))
        {
            routed.link(integration, None);
            routed.note(
                None,
                now,
                "routing",
                "linked",
                format!(
                    "linked to {} (forwarding: always; no routing rule excludes it now)",
                    integration.display_name
                ),
            );
        }
        self.forwards(&decision.forwards, linked, now, &mut routed);
        routed.finish(&decision, now);
        routed
    }

    fn forwards(
        &self,
        forwards: &[RuleAction],
        linked: &[Uuid],
        now: DateTime<Utc>,
        routed: &mut Routed,
    ) {
        for action in forwards {
            let id = action.integration_id;
            // Rules are checked against the team when saved; an integration deleted or
            // re-teamed since is skipped rather than failing the incident change.
            let Some(integration) = self.integration(id) else {
                continue;
            };
            if linked.contains(&id) || routed.links.iter().any(|l| l.integration_id == id) {
                continue;
            }
            let snapshot = (integration.forwarding == ForwardingMode::OnlyOnForwarding)
                .then(|| routed.incident.snapshot());
            routed.link(integration, snapshot);
            routed.note(
                Some(action.rule_id),
                now,
                &rule_actor(&action.rule_name),
                "forwarded",
                format!(
                    "forwarded to {} by routing rule {}",
                    integration.display_name, action.rule_name
                ),
            );
        }
    }
}

fn rule_actor(rule_name: &str) -> String {
    format!("routing rule {rule_name}")
}

impl Routed {
    fn new(decision: &Decision) -> Self {
        Routed {
            incident: decision.incident.clone(),
            links: Vec::new(),
            timeline: Vec::new(),
            routing: RoutingWrite::default(),
            discard: None,
            by_rule: Vec::new(),
        }
    }

    fn link(
        &mut self,
        integration: &Integration,
        snapshot: Option<snowbound_core::IncidentSnapshot>,
    ) {
        self.links.push(NewLink {
            incident_id: self.incident.id,
            integration_id: integration.id,
            snapshot,
        });
    }

    fn note(
        &mut self,
        rule: Option<Uuid>,
        at: DateTime<Utc>,
        actor: &str,
        kind: &str,
        detail: String,
    ) {
        if let Some(rule) = rule {
            self.by_rule.push((rule, detail.clone()));
        }
        self.timeline.push(TimelineEntry {
            at,
            actor: actor.to_owned(),
            kind: kind.to_owned(),
            detail,
        });
    }

    fn edits(&mut self, decision: &Decision, now: DateTime<Utc>) {
        for (rule, edit) in &decision.edits {
            let (kind, detail) = match edit {
                Edit::Severity { from, to } => (
                    "severity_changed",
                    format!("severity {from} → {to} by routing rule {}", rule.rule_name),
                ),
                Edit::Attribute { key, value } => (
                    "attributes_changed",
                    format!(
                        "attribute {key} set to “{value}” by routing rule {}",
                        rule.rule_name
                    ),
                ),
            };
            self.note(
                Some(rule.rule_id),
                now,
                &rule_actor(&rule.rule_name),
                kind,
                detail,
            );
        }
    }

    /// The hold on the links made now, and a history row per rule that fired.
    fn finish(&mut self, decision: &Decision, now: DateTime<Utc>) {
        if let Some((rule, seconds)) = &decision.hold {
            if !self.links.is_empty() {
                let until = now + chrono::Duration::seconds(i64::from(*seconds));
                self.routing.hold = Some(LinkHold {
                    until,
                    rule_id: rule.rule_id,
                    rule_name: rule.rule_name.clone(),
                });
                self.note(
                    Some(rule.rule_id),
                    now,
                    &rule_actor(&rule.rule_name),
                    "held",
                    format!(
                        "sent to ServiceNow after {seconds} s if still unresolved (routing rule {})",
                        rule.rule_name
                    ),
                );
            }
        }
        for rule in &decision.fired {
            let did: Vec<&str> = self
                .by_rule
                .iter()
                .filter(|(id, _)| *id == rule.rule_id)
                .map(|(_, detail)| detail.as_str())
                .collect();
            let detail = if did.is_empty() {
                "matched".to_owned()
            } else {
                did.join("; ")
            };
            self.routing.firings.push(RuleFiring {
                team_id: self.incident.team_id,
                rule_id: rule.rule_id,
                rule_name: rule.rule_name.clone(),
                incident_id: Some(self.incident.id),
                kind: "fired".into(),
                detail,
                at: now,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use snowbound_core::routing::{Actions, Conditions};
    use snowbound_core::{new_id, Attributes, ServiceNowSettings, Severity};

    fn integration(team: Uuid, mode: ForwardingMode) -> Integration {
        Integration {
            id: new_id(),
            display_name: format!("SN {mode}"),
            root_team_id: team,
            team_ids: vec![],
            forwarding: mode,
            servicenow: ServiceNowSettings::with_defaults(
                "https://x".into(),
                "u".into(),
                "c".into(),
            ),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn incident(team: Uuid, severity: Severity) -> Incident {
        Incident {
            id: new_id(),
            team_id: team,
            title: "t".into(),
            description: String::new(),
            severity,
            status: IncidentStatus::Open,
            attributes: Attributes::new(),
            resolve_comment: None,
            source_id: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn rule(team: Uuid, severity: Option<Severity>, then: Actions) -> RoutingRule {
        RoutingRule {
            id: new_id(),
            team_id: team,
            name: "r".into(),
            position: 0,
            when: Conditions {
                severity: severity.map(|s| vec![s]),
                ..Conditions::default()
            },
            then,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn ids(routed: &Routed) -> Vec<Uuid> {
        routed.links.iter().map(|l| l.integration_id).collect()
    }

    #[test]
    fn escalation_forwards_once_and_freezes_only_on_forwarding() {
        let team = new_id();
        let after = integration(team, ForwardingMode::AlwaysAfterForwarding);
        let only = integration(team, ForwardingMode::OnlyOnForwarding);
        let ctx = RoutingContext {
            rules: vec![rule(
                team,
                Some(Severity::Critical),
                Actions {
                    forward_to: vec![after.id, only.id],
                    ..Actions::default()
                },
            )],
            integrations: vec![after.clone(), only.clone()],
        };
        let minor = incident(team, Severity::Minor);
        assert!(ctx.at_open(&minor, "a", Utc::now()).links.is_empty());
        let critical = Incident {
            severity: Severity::Critical,
            ..minor
        };
        let routed = ctx.after_change(&critical, &[], &[], Utc::now());
        assert_eq!(ids(&routed), vec![after.id, only.id]);
        assert!(routed.links[0].snapshot.is_none());
        assert!(routed.links[1].snapshot.is_some());
        assert_eq!(routed.timeline[0].actor, "routing rule r");
        let again = ctx.after_change(&critical, &[after.id, only.id], &[], Utc::now());
        assert!(again.links.is_empty());
    }

    #[test]
    fn an_excluded_always_integration_joins_when_the_exclusion_stops_matching() {
        let team = new_id();
        let always = integration(team, ForwardingMode::Always);
        let ctx = RoutingContext {
            rules: vec![rule(
                team,
                Some(Severity::Minor),
                Actions {
                    exclude_from: vec![always.id],
                    ..Actions::default()
                },
            )],
            integrations: vec![always.clone()],
        };
        let minor = incident(team, Severity::Minor);
        let routed = ctx.at_open(&minor, "a", Utc::now());
        assert!(routed.links.is_empty());
        assert_eq!(routed.timeline[0].kind, "excluded");
        assert!(ctx
            .after_change(&minor, &[], &[], Utc::now())
            .links
            .is_empty());
        let warning = Incident {
            severity: Severity::Warning,
            ..minor.clone()
        };
        assert_eq!(
            ids(&ctx.after_change(&warning, &[], &[], Utc::now())),
            vec![always.id]
        );
        let resolved = Incident {
            status: IncidentStatus::Resolved,
            ..warning
        };
        assert!(ctx
            .after_change(&resolved, &[], &[], Utc::now())
            .links
            .is_empty());
    }
}
