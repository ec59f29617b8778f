//! Which integrations an incident reaches, by forwarding mode (the seed's
//! "Forwarding settings"). Routing rules feed `excluded` and extra forwards.

use uuid::Uuid;

use crate::model::{ForwardingMode, Integration};

/// Integrations that get a link the moment an incident opens: those in `always` mode
/// that serve the incident's team, minus those a routing rule excludes.
pub fn linked_when_opened<'a>(
    team_id: Uuid,
    integrations: &'a [Integration],
    excluded: &'a [Uuid],
) -> impl Iterator<Item = &'a Integration> + 'a {
    integrations.iter().filter(move |integration| {
        integration.forwarding == ForwardingMode::Always
            && integration.serves_team(team_id)
            && !excluded.contains(&integration.id)
    })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    #[error("integration `{integration}` does not serve the incident's team")]
    TeamNotServed { integration: String },
}

/// A forward, by a user or a rule, is allowed only to an integration of the incident's team.
pub fn check_forward(integration: &Integration, incident_team: Uuid) -> Result<(), ForwardError> {
    if integration.serves_team(incident_team) {
        Ok(())
    } else {
        Err(ForwardError::TeamNotServed {
            integration: integration.display_name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceNowSettings;
    use chrono::Utc;

    fn integration(mode: ForwardingMode, root: Uuid, further: Vec<Uuid>) -> Integration {
        Integration {
            id: Uuid::now_v7(),
            display_name: "SN".into(),
            root_team_id: root,
            team_ids: further,
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

    #[test]
    fn only_always_integrations_of_the_team_link_at_open_unless_excluded() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let all = vec![
            integration(ForwardingMode::Always, a, vec![]),
            integration(ForwardingMode::AlwaysAfterForwarding, a, vec![]),
            integration(ForwardingMode::OnlyOnForwarding, a, vec![]),
            integration(ForwardingMode::Always, b, vec![a]),
            integration(ForwardingMode::Always, b, vec![]),
        ];
        let linked: Vec<Uuid> = linked_when_opened(a, &all, &[]).map(|i| i.id).collect();
        assert_eq!(linked, vec![all[0].id, all[3].id]);
        let excluded = [all[0].id];
        let linked: Vec<Uuid> = linked_when_opened(a, &all, &excluded)
            .map(|i| i.id)
            .collect();
        assert_eq!(linked, vec![all[3].id]);
    }

    #[test]
    fn forwarding_to_another_teams_integration_is_refused() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let i = integration(ForwardingMode::AlwaysAfterForwarding, a, vec![]);
        assert!(check_forward(&i, a).is_ok());
        assert!(check_forward(&i, b).is_err());
    }
}
