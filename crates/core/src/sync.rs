//! The pure heart of reconciliation: what a ServiceNow record *should* hold for an
//! incident, and which request brings it there from what we last pushed.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::model::{IncidentSnapshot, IncidentStatus, ServiceNowSettings};

/// Field name → ServiceNow internal value. Ordered so request bodies and previews are
/// stable, which keeps the API call log and tests readable.
pub type FieldMap = BTreeMap<String, String>;

pub const STATE_FIELD: &str = "state";
pub const CORRELATION_DISPLAY: &str = "Snowbound";
/// `incident.short_description` is a 160-character string on a base instance.
pub const SHORT_DESCRIPTION_MAX_CHARS: usize = 160;
/// `incident.description` is a 4000-character string on a base instance.
pub const DESCRIPTION_MAX_CHARS: usize = 4000;

/// Written on create only: a user's later edits to title or description stay in
/// Snowbound, so an agent's edits in ServiceNow are never overwritten.
pub const CREATE_ONLY_FIELDS: [&str; 4] = [
    "short_description",
    "description",
    "correlation_id",
    "correlation_display",
];

pub fn incident_url(public_url: &str, incident_id: Uuid) -> String {
    format!(
        "{}/incidents/{}",
        public_url.trim_end_matches('/'),
        incident_id
    )
}

/// Everything the ServiceNow record should hold for `incident` under `settings`.
pub fn servicenow_fields(
    incident: &IncidentSnapshot,
    settings: &ServiceNowSettings,
    incident_url: &str,
) -> FieldMap {
    let mut fields = FieldMap::new();
    fields.insert(
        "short_description".into(),
        cut_chars(&incident.title, SHORT_DESCRIPTION_MAX_CHARS),
    );
    fields.insert(
        "description".into(),
        description_with_link(&incident.description, incident_url),
    );
    fields.insert("correlation_id".into(), incident.id.to_string());
    fields.insert("correlation_display".into(), CORRELATION_DISPLAY.into());
    fields.insert(
        STATE_FIELD.into(),
        settings.state_for(incident.status).to_owned(),
    );

    let severity = &settings.severity;
    fields.insert(
        severity.primary_field.clone(),
        severity.primary_map.get(incident.severity).to_owned(),
    );
    if let (Some(field), Some(map)) = (&severity.secondary_field, &severity.secondary_map) {
        fields.insert(field.clone(), map.get(incident.severity).to_owned());
    }

    if incident.status == IncidentStatus::Resolved {
        fields.insert(
            settings.close_code_field.clone(),
            settings.close_code.clone(),
        );
        fields.insert(
            settings.close_notes_field.clone(),
            close_notes(incident, settings),
        );
    }
    fields
}

/// The resolver's comment wins; a resolve without one falls back to the configured text.
pub fn close_notes(incident: &IncidentSnapshot, settings: &ServiceNowSettings) -> String {
    match incident.resolve_comment.as_deref().map(str::trim) {
        Some(comment) if !comment.is_empty() => comment.to_owned(),
        _ => settings.close_notes_default.clone(),
    }
}

/// What one reconcile of a link must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncPlan {
    /// No record yet: POST every desired field.
    Create(FieldMap),
    /// PATCH only these fields.
    Update(FieldMap),
    /// ServiceNow already holds what we want: no call at all.
    UpToDate,
}

/// Compare what ServiceNow should hold with what we last pushed.
///
/// `follows_updates` is false for `only_on_forwarding` links: their desired state is a
/// frozen snapshot that changes only on a new forward, and such a forward re-sends the
/// whole snapshot, title and description included.
pub fn plan_sync(
    desired: &FieldMap,
    pushed: &FieldMap,
    has_record: bool,
    follows_updates: bool,
    settings: &ServiceNowSettings,
) -> SyncPlan {
    if !has_record {
        return SyncPlan::Create(desired.clone());
    }
    let mut diff: FieldMap = desired
        .iter()
        .filter(|(field, _)| !follows_updates || !CREATE_ONLY_FIELDS.contains(&field.as_str()))
        .filter(|(field, value)| pushed.get(*field) != Some(*value))
        .map(|(field, value)| (field.clone(), value.clone()))
        .collect();

    // A move to Resolved carries its close fields even when they were sent before:
    // instances may clear them on reopen, and the data policy checks them on every move.
    if diff.get(STATE_FIELD) == Some(&settings.state_resolved) {
        for field in [&settings.close_code_field, &settings.close_notes_field] {
            if let Some(value) = desired.get(field) {
                diff.insert(field.clone(), value.clone());
            }
        }
    }

    if diff.is_empty() {
        SyncPlan::UpToDate
    } else {
        SyncPlan::Update(diff)
    }
}

fn cut_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

fn description_with_link(description: &str, incident_url: &str) -> String {
    let link = format!("Snowbound incident: {incident_url}");
    let description = description.trim_end();
    if description.is_empty() {
        return link;
    }
    // Keep the link whole: it is how an agent finds the way back.
    let room = DESCRIPTION_MAX_CHARS.saturating_sub(link.chars().count() + 2);
    format!("{}\n\n{link}", cut_chars(description, room.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Severity, SeverityMap};

    fn settings() -> ServiceNowSettings {
        ServiceNowSettings::with_defaults(
            "https://example.service-now.com".into(),
            "snowbound".into(),
            "Solution provided".into(),
        )
    }

    fn incident(status: IncidentStatus) -> IncidentSnapshot {
        IncidentSnapshot {
            id: Uuid::nil(),
            title: "Disk full on db-1".into(),
            description: "95% used".into(),
            severity: Severity::Critical,
            status,
            resolve_comment: None,
        }
    }

    fn map(pairs: &[(&str, &str)]) -> FieldMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn open_incident_maps_to_open_state_urgency_and_correlation() {
        let fields = servicenow_fields(
            &incident(IncidentStatus::Open),
            &settings(),
            "http://sb/incidents/0",
        );
        assert_eq!(fields["state"], "1");
        assert_eq!(fields["urgency"], "1");
        assert_eq!(fields["correlation_id"], Uuid::nil().to_string());
        assert_eq!(fields["correlation_display"], "Snowbound");
        assert_eq!(
            fields["description"],
            "95% used\n\nSnowbound incident: http://sb/incidents/0"
        );
        assert!(!fields.contains_key("close_code"));
        assert!(!fields.contains_key("impact"));
    }

    #[test]
    fn resolved_incident_carries_close_code_and_fallback_notes() {
        let fields = servicenow_fields(&incident(IncidentStatus::Resolved), &settings(), "u");
        assert_eq!(fields["state"], "6");
        assert_eq!(fields["close_code"], "Solution provided");
        assert_eq!(fields["close_notes"], "Resolved from Snowbound");
    }

    #[test]
    fn resolve_comment_replaces_fallback_notes_and_blank_comment_does_not() {
        let mut inc = incident(IncidentStatus::Resolved);
        inc.resolve_comment = Some("Freed 20 GB".into());
        assert_eq!(
            servicenow_fields(&inc, &settings(), "u")["close_notes"],
            "Freed 20 GB"
        );
        inc.resolve_comment = Some("   ".into());
        assert_eq!(
            servicenow_fields(&inc, &settings(), "u")["close_notes"],
            "Resolved from Snowbound"
        );
    }

    #[test]
    fn acknowledged_uses_its_own_state_only_when_mapped() {
        let mut s = settings();
        let inc = incident(IncidentStatus::Acknowledged);
        assert_eq!(servicenow_fields(&inc, &s, "u")["state"], "1");
        s.state_acknowledged = Some("2".into());
        assert_eq!(servicenow_fields(&inc, &s, "u")["state"], "2");
    }

    #[test]
    fn secondary_severity_field_is_written_when_enabled() {
        let mut s = settings();
        s.severity.secondary_field = Some("impact".into());
        s.severity.secondary_map = Some(SeverityMap {
            critical: "1".into(),
            warning: "2".into(),
            minor: "2".into(),
        });
        let mut inc = incident(IncidentStatus::Open);
        inc.severity = Severity::Minor;
        let fields = servicenow_fields(&inc, &s, "u");
        assert_eq!(fields["urgency"], "3");
        assert_eq!(fields["impact"], "2");
    }

    #[test]
    fn long_titles_are_cut_to_160_characters_not_bytes() {
        let mut inc = incident(IncidentStatus::Open);
        inc.title = "é".repeat(300);
        let short = &servicenow_fields(&inc, &settings(), "u")["short_description"];
        assert_eq!(short.chars().count(), 160);
        assert!(short.ends_with('…'));
    }

    #[test]
    fn long_descriptions_keep_the_link_back() {
        let mut inc = incident(IncidentStatus::Open);
        inc.description = "x".repeat(10_000);
        let description = &servicenow_fields(&inc, &settings(), "http://sb/i/1")["description"];
        assert!(description.chars().count() <= DESCRIPTION_MAX_CHARS);
        assert!(description.ends_with("Snowbound incident: http://sb/i/1"));
    }

    #[test]
    fn without_a_record_the_plan_is_a_create_of_everything() {
        let desired = servicenow_fields(&incident(IncidentStatus::Open), &settings(), "u");
        assert_eq!(
            plan_sync(&desired, &FieldMap::new(), false, true, &settings()),
            SyncPlan::Create(desired)
        );
    }

    #[test]
    fn update_sends_only_changed_fields_and_never_title_edits() {
        let s = settings();
        let before = servicenow_fields(&incident(IncidentStatus::Open), &s, "u");
        let mut inc = incident(IncidentStatus::Open);
        inc.severity = Severity::Warning;
        inc.title = "renamed".into();
        let desired = servicenow_fields(&inc, &s, "u");
        assert_eq!(
            plan_sync(&desired, &before, true, true, &s),
            SyncPlan::Update(map(&[("urgency", "2")]))
        );
        assert_eq!(
            plan_sync(&before, &before, true, true, &s),
            SyncPlan::UpToDate
        );
    }

    #[test]
    fn resolving_always_sends_close_fields_with_the_state() {
        let s = settings();
        let mut pushed = servicenow_fields(&incident(IncidentStatus::Resolved), &s, "u");
        // Reopened since: ServiceNow holds the open state but we had sent close fields.
        pushed.insert("state".into(), "1".into());
        let desired = servicenow_fields(&incident(IncidentStatus::Resolved), &s, "u");
        assert_eq!(
            plan_sync(&desired, &pushed, true, true, &s),
            SyncPlan::Update(map(&[
                ("close_code", "Solution provided"),
                ("close_notes", "Resolved from Snowbound"),
                ("state", "6"),
            ]))
        );
    }

    #[test]
    fn a_new_snapshot_resends_title_when_not_following_updates() {
        let s = settings();
        let before = servicenow_fields(&incident(IncidentStatus::Open), &s, "u");
        let mut inc = incident(IncidentStatus::Open);
        inc.title = "new title".into();
        let desired = servicenow_fields(&inc, &s, "u");
        assert_eq!(
            plan_sync(&desired, &before, true, false, &s),
            SyncPlan::Update(map(&[("short_description", "new title")]))
        );
    }
}
