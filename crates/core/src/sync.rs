//! The pure heart of reconciliation: what a ServiceNow record *should* hold for an
//! incident, and which request brings it there from what we last pushed.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::mapping::{owned_fields, render, MappingInput, When};
use crate::model::{IncidentSnapshot, IncidentStatus, ServiceNowSettings};
use crate::validate::FieldError;

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

/// What the record should hold once field mappings and routing rules are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub fields: FieldMap,
    /// Fields whose values are display values, sent in their own request with
    /// `sysparm_input_display_value=true` (which applies to every field of a request).
    pub display: BTreeSet<String>,
}

impl Desired {
    /// `fields` split into (internal values, display values).
    pub fn split(&self, fields: &FieldMap) -> (FieldMap, FieldMap) {
        fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(k, _)| !self.display.contains(k))
    }
}

/// [`servicenow_fields`], then the integration's field mappings (which may override
/// short_description and description), then the routing rules' `set_fields` (which
/// win over a mapping of the same field). Fields Snowbound owns (state, severity,
/// close, correlation) are never taken from a rule. An error names the mapping whose
/// template failed to render.
pub fn mapped_fields(
    input: &MappingInput<'_>,
    settings: &ServiceNowSettings,
) -> Result<Desired, FieldError> {
    let mut desired = Desired {
        fields: servicenow_fields(input.incident, settings, input.url),
        display: BTreeSet::new(),
    };
    for (i, mapping) in settings.mapping.fields.iter().enumerate() {
        let value = render(&mapping.value, input).map_err(|message| {
            FieldError::new(
                format!("servicenow.fields[{i}].value"),
                format!("did not render: {message}"),
            )
        })?;
        let value = match mapping.field.as_str() {
            "short_description" => cut_chars(&value, SHORT_DESCRIPTION_MAX_CHARS),
            "description" => cut_chars(&value, DESCRIPTION_MAX_CHARS),
            _ => value,
        };
        desired.fields.insert(mapping.field.clone(), value);
        if mapping.display {
            desired.display.insert(mapping.field.clone());
        }
    }
    let owned = owned_fields(settings);
    for (field, value) in input.rule_fields {
        if owned.contains(&field.as_str()) {
            continue;
        }
        desired.fields.insert(field.clone(), value.clone());
        if settings.mapping.mapping(field).is_some_and(|m| m.display) {
            desired.display.insert(field.clone());
        }
    }
    Ok(desired)
}

/// Whether a change of `field` is sent to an existing record: state, severity and close
/// fields are (subject to `updates`), an `always` mapping is while `updates.fields` is
/// on, and everything else — title, description, `create` mappings, rules' fields no
/// `always` mapping covers — is written on create only.
pub fn kept_in_step(field: &str, settings: &ServiceNowSettings) -> bool {
    if let Some(mapping) = settings.mapping.mapping(field) {
        return mapping.when == When::Always && settings.mapping.updates.fields;
    }
    if CREATE_ONLY_FIELDS.contains(&field) {
        return false;
    }
    let severity = &settings.severity;
    field == STATE_FIELD
        || field == severity.primary_field
        || severity.secondary_field.as_deref() == Some(field)
        || field == settings.close_code_field
        || field == settings.close_notes_field
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
        .filter(|(field, _)| !follows_updates || kept_in_step(field, settings))
        .filter(|(field, value)| pushed.get(*field) != Some(*value))
        .map(|(field, value)| (field.clone(), value.clone()))
        .collect();
    drop_switched_off(&mut diff, pushed, settings);

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

/// `servicenow.updates`: what is not sent after create. A transition switched off stays
/// unsent (and `pushed` keeps the old value), so it is not retried on every change.
fn drop_switched_off(diff: &mut FieldMap, pushed: &FieldMap, settings: &ServiceNowSettings) {
    let updates = &settings.mapping.updates;
    if !updates.severity {
        diff.remove(&settings.severity.primary_field);
        if let Some(field) = &settings.severity.secondary_field {
            diff.remove(field);
        }
    }
    let from = pushed.get(STATE_FIELD).map(String::as_str);
    let resolved = settings.state_resolved.as_str();
    let acknowledged = settings
        .state_acknowledged
        .as_deref()
        .filter(|s| *s != settings.state_open);
    let switched_off = match diff.get(STATE_FIELD).map(String::as_str) {
        Some(to) if to == resolved => !updates.resolve,
        Some(_) if from == Some(resolved) => !updates.reopen,
        Some(to) if Some(to) == acknowledged => !updates.acknowledge,
        _ => false,
    };
    if switched_off {
        diff.remove(STATE_FIELD);
    }
    if !updates.resolve {
        diff.remove(&settings.close_code_field);
        diff.remove(&settings.close_notes_field);
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

    mod mapped {
        use super::*;
        use crate::mapping::{FieldMapping, MappingInput, When};
        use crate::model::Attributes;

        fn mapping(field: &str, value: &str, when: When, display: bool) -> FieldMapping {
            FieldMapping {
                field: field.into(),
                value: value.into(),
                when,
                display,
            }
        }

        fn with_mappings(fields: Vec<FieldMapping>) -> ServiceNowSettings {
            let mut s = settings();
            s.mapping.fields = fields;
            s
        }

        fn desired(
            inc: &IncidentSnapshot,
            s: &ServiceNowSettings,
            rule_fields: &[(&str, &str)],
        ) -> Desired {
            let attributes: Attributes = [("instance".to_string(), "db-1".to_string())].into();
            let rule_fields: BTreeMap<String, String> = rule_fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            mapped_fields(
                &MappingInput {
                    incident: inc,
                    team: "Platform",
                    attributes: &attributes,
                    url: "u",
                    rule_fields: &rule_fields,
                },
                s,
            )
            .unwrap()
        }

        #[test]
        fn mappings_and_rules_add_fields_and_rules_win() {
            let s = with_mappings(vec![
                mapping("cmdb_ci", "{{ attributes.instance }}", When::Create, true),
                mapping("assignment_group", "{{ team }}", When::Always, true),
                mapping(
                    "short_description",
                    "[{{ severity }}] {{ title }}",
                    When::Create,
                    false,
                ),
            ]);
            let inc = incident(IncidentStatus::Open);
            let d = desired(
                &inc,
                &s,
                &[("assignment_group", "Database"), ("state", "3")],
            );
            assert_eq!(d.fields["cmdb_ci"], "db-1");
            assert_eq!(d.fields["assignment_group"], "Database");
            assert_eq!(
                d.fields["short_description"],
                "[critical] Disk full on db-1"
            );
            assert_eq!(d.fields["state"], "1", "a rule cannot take an owned field");
            assert_eq!(
                d.display.iter().map(String::as_str).collect::<Vec<_>>(),
                vec!["assignment_group", "cmdb_ci"]
            );
            let (raw, display) = d.split(&d.fields);
            assert!(raw.contains_key("state") && !raw.contains_key("cmdb_ci"));
            assert_eq!(display.len(), 2);
        }

        #[test]
        fn always_mappings_follow_changes_and_create_mappings_do_not() {
            let s = with_mappings(vec![
                mapping("category", "{{ severity }}", When::Create, false),
                mapping("u_severity_text", "{{ severity }}", When::Always, false),
            ]);
            let before = desired(&incident(IncidentStatus::Open), &s, &[("u_team", "A")]);
            let mut inc = incident(IncidentStatus::Open);
            inc.severity = Severity::Minor;
            let after = desired(&inc, &s, &[("u_team", "B")]);
            assert_eq!(
                plan_sync(&after.fields, &before.fields, true, true, &s),
                SyncPlan::Update(map(&[("u_severity_text", "minor"), ("urgency", "3")]))
            );
            let mut off = s.clone();
            off.mapping.updates.fields = false;
            assert_eq!(
                plan_sync(&after.fields, &before.fields, true, true, &off),
                SyncPlan::Update(map(&[("urgency", "3")]))
            );
        }

        #[test]
        fn a_rule_field_covered_by_an_always_mapping_follows_changes() {
            let s = with_mappings(vec![mapping(
                "assignment_group",
                "Service Desk",
                When::Always,
                true,
            )]);
            let inc = incident(IncidentStatus::Open);
            let before = desired(&inc, &s, &[]);
            let after = desired(&inc, &s, &[("assignment_group", "Database")]);
            assert_eq!(
                plan_sync(&after.fields, &before.fields, true, true, &s),
                SyncPlan::Update(map(&[("assignment_group", "Database")]))
            );
        }

        #[test]
        fn switched_off_updates_are_not_sent() {
            let mut s = settings();
            s.state_acknowledged = Some("2".into());
            let open = servicenow_fields(&incident(IncidentStatus::Open), &s, "u");
            let mut warning = incident(IncidentStatus::Open);
            warning.severity = Severity::Warning;
            let resolved = servicenow_fields(&incident(IncidentStatus::Resolved), &s, "u");
            let acked = servicenow_fields(&incident(IncidentStatus::Acknowledged), &s, "u");

            let mut off = s.clone();
            off.mapping.updates.severity = false;
            let changed = servicenow_fields(&warning, &s, "u");
            assert_eq!(
                plan_sync(&changed, &open, true, true, &off),
                SyncPlan::UpToDate
            );

            let mut off = s.clone();
            off.mapping.updates.resolve = false;
            assert_eq!(
                plan_sync(&resolved, &open, true, true, &off),
                SyncPlan::UpToDate
            );

            let mut off = s.clone();
            off.mapping.updates.reopen = false;
            assert_eq!(
                plan_sync(&open, &resolved, true, true, &off),
                SyncPlan::UpToDate
            );
            assert!(matches!(
                plan_sync(&open, &resolved, true, true, &s),
                SyncPlan::Update(_)
            ));

            let mut off = s.clone();
            off.mapping.updates.acknowledge = false;
            assert_eq!(
                plan_sync(&acked, &open, true, true, &off),
                SyncPlan::UpToDate
            );
            assert_eq!(
                plan_sync(&acked, &open, true, true, &s),
                SyncPlan::Update(map(&[("state", "2")]))
            );
        }
    }
}
