//! The loop-prevention rules and who-wins semantics, one test each (named in
//! docs/SYNC_RULES.md), plus a small two-system simulation for flip-flops.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use super::*;
use crate::model::{IncidentSnapshot, IncidentStatus, ServiceNowSettings, Severity};
use crate::sync::{plan_sync, servicenow_fields, FieldMap, SyncPlan};

const URL: &str = "http://sb/incidents/1";

fn t(second: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap() + Duration::seconds(second)
}

fn settings() -> ServiceNowSettings {
    let mut s =
        ServiceNowSettings::with_defaults("https://x".into(), "snowbound".into(), "Solved".into());
    s.state_acknowledged = Some("2".into());
    s
}

fn all_on() -> Transitions {
    Transitions {
        resolve: true,
        reopen: true,
        acknowledge: true,
        severity: true,
    }
}

fn map(pairs: &[(&str, &str)]) -> FieldMap {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A record as an agent left it at `t(at)`.
fn record(fields: &[(&str, &str)], mod_count: i64, at: i64) -> SeenRecord {
    let mut values = map(&[
        ("sys_id", "abc"),
        ("number", "INC0010001"),
        ("sys_updated_by", "agent"),
        ("state", "1"),
        ("urgency", "1"),
    ]);
    values.extend(map(fields));
    values.insert("sys_mod_count".into(), mod_count.to_string());
    values.insert("sys_updated_on".into(), format_servicenow_time(t(at)));
    SeenRecord::new(values, FieldMap::new()).unwrap()
}

fn pushed_open() -> FieldMap {
    map(&[("state", "1"), ("urgency", "1")])
}

fn incident(status: IncidentStatus, changed_at: i64) -> IncidentSide {
    IncidentSide {
        status,
        severity: Severity::Critical,
        status_changed_at: t(changed_at),
        severity_changed_at: t(changed_at),
    }
}

struct Case {
    settings: ServiceNowSettings,
    transitions: Transitions,
    pushed: FieldMap,
    applied: Option<i64>,
    notes: BTreeMap<String, LinkNote>,
    pending: bool,
}

impl Case {
    fn new() -> Case {
        Case {
            settings: settings(),
            transitions: all_on(),
            pushed: pushed_open(),
            applied: None,
            notes: BTreeMap::new(),
            pending: false,
        }
    }

    fn decide(&self, record: &SeenRecord, incident: IncidentSide) -> Decision {
        decide(
            record,
            LinkSide {
                pushed: &self.pushed,
                applied_mod_count: self.applied,
                notes: &self.notes,
                reconcile_pending: self.pending,
            },
            incident,
            Rules {
                settings: &self.settings,
                transitions: self.transitions,
                own_user: Some("snowbound"),
            },
        )
    }
}

fn applied(decision: Decision) -> Inbound {
    match decision {
        Decision::Apply(inbound) => inbound,
        other => panic!("expected a change, got {other:?}"),
    }
}

#[test]
fn servicenow_time_reads_and_writes_second_resolution_utc() {
    assert_eq!(parse_servicenow_time("2026-12-01 10:00:05"), Some(t(5)));
    assert_eq!(
        format_servicenow_time(t(5) + Duration::milliseconds(900)),
        "2026-12-01 10:00:05"
    );
    assert_eq!(parse_servicenow_time("01.12.2026 10:00"), None);
    let missing = SeenRecord::new(
        map(&[("sys_id", "a"), ("sys_updated_on", "2026-12-01 10:00:00")]),
        FieldMap::new(),
    );
    assert_eq!(missing.unwrap_err(), "the record has no `sys_mod_count`");
}

#[test]
fn rule_each_mod_count_is_applied_at_most_once() {
    assert!(!already_applied(3, None));
    assert!(!already_applied(4, Some(3)));
    assert!(already_applied(3, Some(3)));
    assert!(already_applied(2, Some(3)), "an older read arriving late");
    let mut case = Case::new();
    case.applied = Some(1);
    let resolved = record(&[("state", "6"), ("close_notes", "fixed")], 1, 10);
    assert_eq!(
        case.decide(&resolved, incident(IncidentStatus::Open, 0)),
        Decision::Nothing(Quiet::AlreadyApplied)
    );
    case.applied = Some(0);
    assert_eq!(
        applied(case.decide(&resolved, incident(IncidentStatus::Open, 0))).mod_count,
        1
    );
}

#[test]
fn rule_an_echo_of_what_snowbound_pushed_costs_nothing() {
    let case = Case::new();
    // A work note by an agent: state and urgency still hold what Snowbound pushed.
    let noted = record(&[], 4, 10);
    assert!(is_echo("state", &noted, &case.pushed));
    assert_eq!(
        case.decide(&noted, incident(IncidentStatus::Open, 0)),
        Decision::Nothing(Quiet::Echo)
    );
    // A field an ACL hides is no news.
    let mut hidden = noted.clone();
    hidden.values.remove("urgency");
    assert!(is_echo("urgency", &hidden, &case.pushed));
}

#[test]
fn rule_snowbounds_own_write_is_an_echo_even_before_pushed_is_recorded() {
    assert!(own_write("snowbound", Some("snowbound"), true));
    assert!(own_write("SnowBound ", Some("snowbound"), true));
    assert!(!own_write("agent", Some("snowbound"), true));
    assert!(!own_write("", Some(""), true));
    assert!(!own_write("agent", None, true));
    assert!(!own_write("snowbound", Some("snowbound"), false));
    // Snowbound's resolve was PATCHed; the business rule's poke is read before the
    // PATCH's answer reached `pushed`, while Snowbound already reopened meanwhile.
    let mut case = Case::new();
    case.pending = true;
    let own = record(&[("state", "6"), ("sys_updated_by", "snowbound")], 2, 10);
    assert_eq!(
        case.decide(&own, incident(IncidentStatus::Open, 5)),
        Decision::Nothing(Quiet::OwnWrite)
    );
    // Once the link is synced, Snowbound's write holds what was pushed: an echo…
    case.pending = false;
    case.pushed.insert("state".into(), "6".into());
    assert_eq!(
        case.decide(&own, incident(IncidentStatus::Resolved, 5)),
        Decision::Nothing(Quiet::Echo)
    );
    // …and an agent's urgency change that Snowbound's write hid is found.
    let hiding = record(
        &[
            ("state", "6"),
            ("urgency", "3"),
            ("sys_updated_by", "snowbound"),
        ],
        3,
        10,
    );
    assert_eq!(
        applied(case.decide(&hiding, incident(IncidentStatus::Resolved, 5))).actions,
        vec![IncidentAction::SetSeverity {
            severity: Severity::Minor
        }]
    );
}

#[test]
fn rule_an_applied_change_is_recorded_as_pushed_so_outbound_never_sends_it_back() {
    let case = Case::new();
    // The agent closes (7, not Snowbound's resolved 6) with notes of their own.
    let closed = record(&[("state", "7"), ("close_notes", "replaced disk")], 3, 10);
    let inbound = applied(case.decide(&closed, incident(IncidentStatus::Open, 0)));
    assert_eq!(
        inbound.actions,
        vec![IncidentAction::Resolve {
            comment: Some("replaced disk".into())
        }]
    );
    assert_eq!(inbound.actor(), "agent in ServiceNow INC0010001");
    assert_eq!(inbound.touched, vec!["state", "close_code", "close_notes"]);
    // The engine applies the resolve, then records the outbound values of the touched
    // fields as pushed: the next reconcile has nothing to send.
    let after = IncidentSnapshot {
        id: Uuid::nil(),
        title: "t".into(),
        description: String::new(),
        severity: Severity::Critical,
        status: IncidentStatus::Resolved,
        resolve_comment: Some("replaced disk".into()),
    };
    let desired = servicenow_fields(&after, &case.settings, URL);
    let mut pushed = servicenow_fields(
        &IncidentSnapshot {
            status: IncidentStatus::Open,
            resolve_comment: None,
            ..after.clone()
        },
        &case.settings,
        URL,
    );
    pushed.extend(pushed_after_inbound(&desired, &inbound.touched));
    assert_eq!(
        plan_sync(&desired, &pushed, true, true, &case.settings),
        SyncPlan::UpToDate
    );
    // Without the rule, Snowbound would "correct" Closed to Resolved and send the close
    // fields back.
    let mut naive = pushed.clone();
    naive.insert("state".into(), "7".into());
    assert!(matches!(
        plan_sync(&desired, &naive, true, true, &case.settings),
        SyncPlan::Update(_)
    ));
}

#[test]
fn transitions_resolve_reopen_acknowledge_and_severity() {
    let case = Case::new();
    let canceled = record(&[("state", "8")], 1, 10);
    assert_eq!(
        applied(case.decide(&canceled, incident(IncidentStatus::Acknowledged, 0))).actions,
        vec![IncidentAction::Resolve { comment: None }]
    );

    let mut resolved = Case::new();
    resolved.pushed = map(&[("state", "6"), ("urgency", "1")]);
    let reopened = record(&[("state", "1")], 5, 10);
    assert_eq!(
        applied(resolved.decide(&reopened, incident(IncidentStatus::Resolved, 0))).actions,
        vec![IncidentAction::Reopen]
    );
    let in_progress = record(&[("state", "2")], 5, 10);
    assert_eq!(
        applied(resolved.decide(&in_progress, incident(IncidentStatus::Resolved, 0))).actions,
        vec![IncidentAction::Reopen, IncidentAction::Acknowledge]
    );

    let ack = applied(case.decide(&in_progress, incident(IncidentStatus::Open, 0)));
    assert_eq!(ack.actions, vec![IncidentAction::Acknowledge]);
    assert_eq!(ack.touched, vec!["state"]);

    let urgent = record(&[("urgency", "3")], 6, 10);
    let sev = applied(case.decide(&urgent, incident(IncidentStatus::Open, 0)));
    assert_eq!(
        sev.actions,
        vec![IncidentAction::SetSeverity {
            severity: Severity::Minor
        }]
    );
    assert_eq!(sev.touched, vec!["urgency"]);

    // A state that means what the incident already is (On Hold while open) is in step.
    let on_hold = record(&[("state", "3")], 7, 10);
    assert_eq!(
        case.decide(&on_hold, incident(IncidentStatus::Open, 0)),
        Decision::Nothing(Quiet::Echo)
    );
}

#[test]
fn a_transition_turned_off_shows_as_drift_and_changes_nothing() {
    let mut case = Case::new();
    case.transitions = Transitions::default(); // severity off
    let urgent = record(&[("urgency", "3")], 6, 10);
    let drift = applied(case.decide(&urgent, incident(IncidentStatus::Open, 0)));
    assert!(drift.actions.is_empty() && drift.servicenow_holds.is_empty());
    let note = drift.notes["urgency"].clone().unwrap();
    assert_eq!(note.kind, NoteKind::Drift);
    assert_eq!(
        (
            note.servicenow_value.as_str(),
            note.snowbound_value.as_str()
        ),
        ("3", "1")
    );
    assert_eq!(note.by, "agent");
    // The same drift read again is no news.
    case.notes.insert("urgency".into(), note);
    assert_eq!(
        case.decide(
            &record(&[("urgency", "3")], 7, 11),
            incident(IncidentStatus::Open, 0)
        ),
        Decision::Nothing(Quiet::Echo)
    );
    // ServiceNow back in step clears it.
    let cleared = applied(case.decide(&record(&[], 8, 12), incident(IncidentStatus::Open, 0)));
    assert_eq!(cleared.notes["urgency"], None);
    // A value outside the severity map is drift even with the transition on.
    case.transitions = all_on();
    let odd = applied(case.decide(
        &record(&[("urgency", "9")], 9, 13),
        incident(IncidentStatus::Open, 0),
    ));
    assert!(odd.notes["urgency"]
        .as_ref()
        .unwrap()
        .reason
        .contains("not in the severity map"));
}

#[test]
fn who_wins_latest_compares_sys_updated_on_with_snowbounds_change() {
    // Both changed since the last push: the times decide.
    assert!(servicenow_wins(Winner::Latest, t(10), t(9), true));
    assert!(!servicenow_wins(Winner::Latest, t(9), t(10), true));
    // One-second resolution: a tie goes to Snowbound.
    assert!(!servicenow_wins(
        Winner::Latest,
        t(10),
        t(10) + Duration::milliseconds(300),
        true
    ));
    // Snowbound's change reached ServiceNow and was then replaced there: ServiceNow's
    // is later, even in the same second (or with a clock running behind).
    assert!(servicenow_wins(
        Winner::Latest,
        t(10),
        t(10) + Duration::milliseconds(300),
        false
    ));
    assert!(servicenow_wins(Winner::Servicenow, t(1), t(10), true));
    assert!(!servicenow_wins(Winner::Snowbound, t(10), t(1), false));

    // Snowbound's value of the state is not in ServiceNow yet (it pushed On Hold, the
    // incident is open now): the times decide.
    let mut case = Case::new();
    case.pushed.insert("state".into(), "3".into());
    let resolved = record(&[("state", "6")], 1, 10);
    // ServiceNow later: it wins.
    assert!(
        !applied(case.decide(&resolved, incident(IncidentStatus::Open, 5)))
            .actions
            .is_empty()
    );
    // Snowbound reopened later: it re-asserts and says so.
    let kept = applied(case.decide(&resolved, incident(IncidentStatus::Open, 20)));
    assert!(kept.actions.is_empty());
    assert_eq!(kept.servicenow_holds, map(&[("state", "6")]));
    assert!(kept.needs_reconcile());
    assert_eq!(
        kept.notes["state"].as_ref().unwrap().kind,
        NoteKind::Reasserted
    );
    // Snowbound's open state was in ServiceNow and the agent replaced it: the agent's
    // change is the later one, even in the same second as Snowbound's last change.
    let case = Case::new();
    let taken = applied(case.decide(&resolved, incident(IncidentStatus::Open, 20)));
    assert!(!taken.actions.is_empty());
}

#[test]
fn who_wins_snowbound_reasserts_and_servicenow_is_accepted() {
    let mut case = Case::new();
    case.settings.who_wins = WhoWins {
        state: Winner::Snowbound,
        severity: Winner::Servicenow,
    };
    let both = record(&[("state", "6"), ("urgency", "2")], 1, 10);
    let inbound = applied(case.decide(&both, incident(IncidentStatus::Open, 0)));
    assert_eq!(
        inbound.actions,
        vec![IncidentAction::SetSeverity {
            severity: Severity::Warning
        }]
    );
    assert_eq!(inbound.servicenow_holds, map(&[("state", "6")]));
    let note = inbound.notes["state"].clone().unwrap();
    assert_eq!(
        (note.kind, note.snowbound_value.as_str()),
        (NoteKind::Reasserted, "1")
    );
    assert!(note.reason.contains("who wins: snowbound"));
}

#[test]
fn rule_reassert_once_per_servicenow_value_so_flip_flops_settle() {
    let note = LinkNote {
        field: "state".into(),
        kind: NoteKind::Reasserted,
        servicenow_value: "6".into(),
        snowbound_value: "1".into(),
        by: "agent".into(),
        at: t(0),
        reason: String::new(),
    };
    assert!(reassert_again(None, "6", "1"));
    assert!(!reassert_again(Some(&note), "6", "1"));
    assert!(
        reassert_again(Some(&note), "7", "1"),
        "a new ServiceNow value"
    );
    assert!(
        reassert_again(Some(&note), "6", "2"),
        "Snowbound changed since"
    );
}

/// Two systems, one link: ServiceNow with an automation that resolves every reopened
/// record, Snowbound with `who wins: snowbound` re-asserting. Each step is one reconcile
/// (plan_sync) and one poke read (decide); the loop must go quiet within two PATCHes.
#[test]
fn flip_flops_settle_within_a_call_or_two() {
    for winner in [Winner::Snowbound, Winner::Latest, Winner::Servicenow] {
        let mut settings = settings();
        settings.who_wins.state = winner;
        let mut status = IncidentStatus::Open;
        let mut status_changed_at = t(0);
        let snapshot = |status| IncidentSnapshot {
            id: Uuid::nil(),
            title: "t".into(),
            description: String::new(),
            severity: Severity::Critical,
            status,
            resolve_comment: None,
        };
        let mut pushed = servicenow_fields(&snapshot(status), &settings, URL);
        let mut sn = pushed.clone();
        let mut mod_count = 0;
        let mut applied_mod: Option<i64> = None;
        let mut notes: BTreeMap<String, LinkNote> = BTreeMap::new();
        let mut patches = 0;
        let mut clock = 1;
        // The automation in ServiceNow: whatever happens, the record ends up Resolved.
        let automation = |sn: &mut FieldMap, by: &str, mod_count: &mut i64| {
            if sn["state"] != "6" {
                sn.insert("state".into(), "6".into());
                sn.insert("sys_updated_by".into(), by.into());
                *mod_count += 1;
            }
        };
        automation(&mut sn, "system", &mut mod_count);
        let mut quiet_rounds = 0;
        for _round in 0..20 {
            clock += 1;
            // Inbound: read the record as ServiceNow holds it.
            let mut values = sn.clone();
            values.insert("sys_id".into(), "abc".into());
            values.insert("sys_mod_count".into(), mod_count.to_string());
            values.insert("sys_updated_on".into(), format_servicenow_time(t(clock)));
            values
                .entry("sys_updated_by".into())
                .or_insert("system".into());
            let record = SeenRecord::new(values, FieldMap::new()).unwrap();
            let decision = decide(
                &record,
                LinkSide {
                    pushed: &pushed,
                    applied_mod_count: applied_mod,
                    notes: &notes,
                    reconcile_pending: false,
                },
                IncidentSide {
                    status,
                    severity: Severity::Critical,
                    status_changed_at,
                    severity_changed_at: t(0),
                },
                Rules {
                    settings: &settings,
                    transitions: all_on(),
                    own_user: Some("snowbound"),
                },
            );
            if let Decision::Apply(inbound) = decision {
                for action in &inbound.actions {
                    status = match action {
                        IncidentAction::Resolve { .. } => IncidentStatus::Resolved,
                        IncidentAction::Reopen => IncidentStatus::Open,
                        IncidentAction::Acknowledge => IncidentStatus::Acknowledged,
                        IncidentAction::SetSeverity { .. } => status,
                    };
                    status_changed_at = t(clock);
                }
                let desired = servicenow_fields(&snapshot(status), &settings, URL);
                pushed.extend(pushed_after_inbound(&desired, &inbound.touched));
                pushed.extend(inbound.servicenow_holds.clone());
                for (field, note) in inbound.notes {
                    match note {
                        Some(note) => notes.insert(field, note),
                        None => notes.remove(&field),
                    };
                }
                applied_mod = Some(inbound.mod_count);
            }
            // Outbound: one reconcile.
            let desired = servicenow_fields(&snapshot(status), &settings, URL);
            match plan_sync(&desired, &pushed, true, true, &settings) {
                SyncPlan::Update(fields) => {
                    patches += 1;
                    sn.extend(fields.clone());
                    sn.insert("sys_updated_by".into(), "snowbound".into());
                    mod_count += 1;
                    pushed.extend(fields);
                    automation(&mut sn, "system", &mut mod_count);
                    quiet_rounds = 0;
                }
                SyncPlan::UpToDate => quiet_rounds += 1,
                SyncPlan::Create(_) => unreachable!("the record exists"),
            }
            if quiet_rounds == 3 {
                break;
            }
        }
        assert_eq!(quiet_rounds, 3, "{winner:?} never went quiet");
        assert!(patches <= 2, "{winner:?} took {patches} PATCHes");
        match winner {
            Winner::Snowbound => {
                assert_eq!(status, IncidentStatus::Open);
                assert_eq!(notes["state"].kind, NoteKind::Drift);
            }
            _ => assert_eq!(status, IncidentStatus::Resolved),
        }
    }
}

#[test]
fn fields_to_read_cover_the_mapping() {
    let mut s = settings();
    s.severity.primary_field = "u_sev".into();
    s.close_notes_field = "u_notes".into();
    let fields = fields_to_read(&s);
    for f in [
        "sys_mod_count",
        "sys_updated_on",
        "sys_updated_by",
        "state",
        "u_sev",
        "u_notes",
        "assignment_group",
        "caller_id",
        "cmdb_ci",
    ] {
        assert!(fields.contains(&f.to_string()), "{f}");
    }
}
