use super::*;
use crate::model::{Attributes, IncidentStatus};

fn incident(team: Uuid, severity: Severity, attrs: &[(&str, &str)]) -> Incident {
    let now = Utc::now();
    Incident {
        id: Uuid::now_v7(),
        team_id: team,
        title: "Disk FULL on db-1".into(),
        description: String::new(),
        severity,
        status: IncidentStatus::Open,
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Attributes>(),
        resolve_comment: None,
        source_id: None,
        created_at: now,
        updated_at: now,
    }
}

fn rule(team: Uuid, position: i64, when: Conditions, then: Actions) -> RoutingRule {
    let now = Utc::now();
    RoutingRule {
        id: Uuid::now_v7(),
        team_id: team,
        name: format!("rule {position}"),
        position,
        when,
        then,
        created_at: now,
        updated_at: now,
    }
}

fn forward(ids: &[Uuid]) -> Actions {
    Actions {
        forward_to: ids.to_vec(),
        ..Actions::default()
    }
}

fn exclude(ids: &[Uuid]) -> Actions {
    Actions {
        exclude_from: ids.to_vec(),
        ..Actions::default()
    }
}

fn matcher(json: &str) -> AttributeMatcher {
    serde_json::from_str(json).unwrap()
}

#[test]
fn matchers_parse_from_plain_strings_and_operator_objects() {
    assert_eq!(matcher(r#""db""#), AttributeMatcher::Equals("db".into()));
    assert_eq!(
        matcher(r#"{"contains":"d"}"#),
        AttributeMatcher::Contains("d".into())
    );
    assert_eq!(
        matcher(r#"{"regex":"^d"}"#),
        AttributeMatcher::Regex("^d".into())
    );
    for bad in [
        r#"{"like":"d"}"#,
        r#"{"equals":"a","contains":"b"}"#,
        r#"{}"#,
        "3",
        "null",
    ] {
        assert!(
            serde_json::from_str::<AttributeMatcher>(bad).is_err(),
            "{bad}"
        );
    }
    let json = serde_json::to_string(&AttributeMatcher::Regex("x".into())).unwrap();
    assert_eq!(json, r#"{"regex":"x"}"#);
}

#[test]
fn every_condition_must_hold() {
    let team = Uuid::now_v7();
    let i = incident(
        team,
        Severity::Critical,
        &[("service", "db"), ("env", "prod-eu")],
    );
    let when = |json: &str| serde_json::from_str::<Conditions>(json).unwrap();
    assert!(when("{}").matches(&i, Utc::now()));
    assert!(when(r#"{"severity":["critical","warning"]}"#).matches(&i, Utc::now()));
    assert!(!when(r#"{"severity":["minor"]}"#).matches(&i, Utc::now()));
    assert!(when(r#"{"attributes":{"service":"db"}}"#).matches(&i, Utc::now()));
    assert!(!when(r#"{"attributes":{"service":"d"}}"#).matches(&i, Utc::now()));
    assert!(when(r#"{"attributes":{"env":{"contains":"prod"}}}"#).matches(&i, Utc::now()));
    assert!(when(r#"{"attributes":{"env":{"regex":"^prod-(eu|us)$"}}}"#).matches(&i, Utc::now()));
    assert!(!when(r#"{"attributes":{"env":{"regex":"^us"}}}"#).matches(&i, Utc::now()));
    assert!(!when(r#"{"attributes":{"missing":{"regex":".*"}}}"#).matches(&i, Utc::now()));
    assert!(when(r#"{"title_contains":"disk full"}"#).matches(&i, Utc::now()));
    assert!(
        !when(r#"{"title_contains":"disk full","severity":["warning"]}"#).matches(&i, Utc::now())
    );
}

#[test]
fn all_matching_rules_apply_and_the_earlier_rule_wins_a_conflict() {
    let team = Uuid::now_v7();
    let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let critical = Conditions {
        severity: Some(vec![Severity::Critical]),
        ..Conditions::default()
    };
    let rules = vec![
        rule(team, 2, Conditions::default(), forward(&[b, c])),
        rule(team, 1, critical.clone(), exclude(&[b])),
        rule(team, 3, critical, forward(&[a])),
        rule(Uuid::now_v7(), 0, Conditions::default(), exclude(&[a])),
    ];
    let d = evaluate(
        &rules,
        &incident(team, Severity::Critical, &[]),
        Utc::now(),
        &[],
    );
    let ids = |actions: &[RuleAction]| -> Vec<Uuid> {
        actions.iter().map(|a| a.integration_id).collect()
    };
    assert_eq!(ids(&d.exclusions), vec![b]);
    assert_eq!(ids(&d.forwards), vec![c, a]);
    assert_eq!(d.forwards[0].rule_name, "rule 2");

    let d = evaluate(
        &rules,
        &incident(team, Severity::Minor, &[]),
        Utc::now(),
        &[],
    );
    assert!(d.exclusions.is_empty());
    assert_eq!(ids(&d.forwards), vec![b, c]);
}

#[test]
fn stop_ends_the_evaluation() {
    let team = Uuid::now_v7();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let mut first = forward(&[a]);
    first.stop = true;
    let rules = vec![
        rule(team, 1, Conditions::default(), first),
        rule(team, 2, Conditions::default(), forward(&[b])),
    ];
    let d = evaluate(
        &rules,
        &incident(team, Severity::Minor, &[]),
        Utc::now(),
        &[],
    );
    assert_eq!(d.forwards.len(), 1);
    assert_eq!(d.forwards[0].integration_id, a);
}

#[test]
fn set_fields_route_criticals_and_minors_to_different_groups() {
    let team = Uuid::now_v7();
    let sets = |pairs: &[(&str, &str)]| Actions {
        set_fields: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Actions::default()
    };
    let critical = Conditions {
        severity: Some(vec![Severity::Critical]),
        ..Conditions::default()
    };
    let rules = vec![
        rule(team, 1, critical, sets(&[("assignment_group", "Database")])),
        rule(
            team,
            2,
            Conditions::default(),
            sets(&[
                ("assignment_group", "Service Desk"),
                ("category", "software"),
            ]),
        ),
    ];
    let of = |severity| set_fields(&rules, &incident(team, severity, &[]), Utc::now());
    assert_eq!(of(Severity::Critical)["assignment_group"], "Database");
    assert_eq!(of(Severity::Critical)["category"], "software");
    assert_eq!(of(Severity::Minor)["assignment_group"], "Service Desk");
    let json: Actions =
        serde_json::from_str(r#"{"set_fields": {"assignment_group": "Network L2"}}"#).unwrap();
    assert_eq!(json.set_fields["assignment_group"], "Network L2");
    let bad = sets(&[("Bad", "x"), ("ok", "a\u{0}b")]);
    let fields: Vec<String> = validate_set_fields(&bad)
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, vec!["then.set_fields", "then.set_fields.ok"]);
}

#[test]
fn validation_names_the_bad_field() {
    let when: Conditions = serde_json::from_str(
        r#"{"severity":[],"title_contains":"","attributes":{"env":{"regex":"(unclosed"}}}"#,
    )
    .unwrap();
    let fields: Vec<String> = validate_conditions(&when)
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(
        fields,
        vec![
            "when.severity",
            "when.title_contains",
            "when.attributes.env.regex"
        ]
    );
}

fn when(json: &str) -> Conditions {
    serde_json::from_str(json).unwrap()
}

fn then(json: &str) -> Actions {
    serde_json::from_str(json).unwrap()
}

/// 2026-12-07 is a Monday; 09:30 UTC is 10:30 in Berlin (winter time).
fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().to_utc()
}

#[test]
fn comparison_operators_compare_numbers_as_numbers_and_else_as_text() {
    let i = incident(
        Uuid::now_v7(),
        Severity::Minor,
        &[("load", "10"), ("env", "prod"), ("zone", "b")],
    );
    let now = Utc::now();
    let holds = |json: &str| when(json).matches(&i, now);
    assert!(
        holds(r#"{"attributes":{"load":{"gt":"9"}}}"#),
        "10 > 9 as numbers"
    );
    assert!(!holds(r#"{"attributes":{"load":{"gt":"10"}}}"#));
    assert!(holds(r#"{"attributes":{"load":{"gte":"10.0"}}}"#));
    assert!(holds(r#"{"attributes":{"load":{"lt":"10.5"}}}"#));
    assert!(holds(r#"{"attributes":{"load":{"lte":"10"}}}"#));
    assert!(!holds(r#"{"attributes":{"load":{"lt":"9"}}}"#));
    // Not both numbers: compared as text, where "10" sorts before "9x".
    assert!(holds(r#"{"attributes":{"load":{"lt":"9x"}}}"#));
    assert!(holds(r#"{"attributes":{"zone":{"gt":"a"}}}"#));
    assert!(!holds(r#"{"attributes":{"zone":{"gte":"c"}}}"#));
    assert!(holds(r#"{"attributes":{"env":{"not_equals":"dev"}}}"#));
    assert!(!holds(r#"{"attributes":{"env":{"not_equals":"prod"}}}"#));
    assert!(holds(r#"{"attributes":{"env":{"not_contains":"ev"}}}"#));
    assert!(!holds(r#"{"attributes":{"env":{"not_contains":"ro"}}}"#));
    // An attribute the incident lacks equals nothing and contains nothing.
    assert!(holds(r#"{"attributes":{"team":{"not_equals":"x"}}}"#));
    assert!(holds(r#"{"attributes":{"team":{"not_contains":"x"}}}"#));
    assert!(!holds(r#"{"attributes":{"team":{"gt":"0"}}}"#));
    assert!(!holds(r#"{"attributes":{"team":{"lte":"zzz"}}}"#));
    let json = serde_json::to_string(&AttributeMatcher::NotContains("x".into())).unwrap();
    assert_eq!(json, r#"{"not_contains":"x"}"#);
}

#[test]
fn status_source_and_any_combine_as_asked() {
    let source = Uuid::now_v7();
    let mut i = incident(Uuid::now_v7(), Severity::Warning, &[("env", "prod")]);
    let now = Utc::now();
    assert!(when(r#"{"status":["open","acknowledged"]}"#).matches(&i, now));
    assert!(!when(r#"{"status":["resolved"]}"#).matches(&i, now));
    let from_source = format!(r#"{{"source_ids":["{source}"]}}"#);
    assert!(!when(&from_source).matches(&i, now), "opened by a person");
    i.source_id = Some(source);
    assert!(when(&from_source).matches(&i, now));
    i.source_id = Some(Uuid::now_v7());
    assert!(!when(&from_source).matches(&i, now));

    let all = r#"{"severity":["critical"],"attributes":{"env":"prod"}}"#;
    let any = r#"{"match":"any","severity":["critical"],"attributes":{"env":"prod"}}"#;
    assert!(!when(all).matches(&i, now));
    assert!(when(any).matches(&i, now));
    assert!(
        !when(r#"{"match":"any","severity":["critical"],"attributes":{"env":"dev"}}"#)
            .matches(&i, now)
    );
    assert!(
        when(r#"{"match":"any"}"#).matches(&i, now),
        "no conditions: every incident"
    );
    // `match` is written only when it is not the default.
    assert!(!serde_json::to_string(&when(all)).unwrap().contains("match"));
    assert!(serde_json::to_string(&when(any))
        .unwrap()
        .contains(r#""match":"any""#));
}

#[test]
fn time_windows_hold_on_their_days_and_hours_in_their_zone() {
    let i = incident(Uuid::now_v7(), Severity::Minor, &[]);
    let office = when(
        r#"{"time_window":{"days":["mon","tue","wed","thu","fri"],"from":"08:00","to":"18:00","time_zone":"Europe/Berlin"}}"#,
    );
    assert!(
        office.matches(&i, at("2026-12-07T09:30:00Z")),
        "Monday 10:30 Berlin"
    );
    assert!(
        office.matches(&i, at("2026-12-07T07:00:00Z")),
        "08:00 is in"
    );
    assert!(
        !office.matches(&i, at("2026-12-07T17:00:00Z")),
        "18:00 is out"
    );
    assert!(
        !office.matches(&i, at("2026-12-07T06:59:00Z")),
        "07:59 Berlin"
    );
    assert!(!office.matches(&i, at("2026-12-06T09:30:00Z")), "Sunday");
    // Summer time: 07:30 UTC is 09:30 in Berlin in July, but 08:30 in December.
    let early =
        when(r#"{"time_window":{"from":"09:00","to":"10:00","time_zone":"Europe/Berlin"}}"#);
    assert!(early.matches(&i, at("2026-07-06T07:30:00Z")));
    assert!(!early.matches(&i, at("2026-12-07T07:30:00Z")));

    // Friday night past midnight belongs to Friday.
    let night =
        when(r#"{"time_window":{"days":["fri"],"from":"22:00","to":"06:00","time_zone":"UTC"}}"#);
    assert!(
        night.matches(&i, at("2026-12-11T23:00:00Z")),
        "Friday 23:00"
    );
    assert!(
        night.matches(&i, at("2026-12-12T03:00:00Z")),
        "Saturday 03:00"
    );
    assert!(
        !night.matches(&i, at("2026-12-12T06:00:00Z")),
        "Saturday 06:00"
    );
    assert!(
        !night.matches(&i, at("2026-12-12T23:00:00Z")),
        "Saturday 23:00"
    );
    assert!(
        !night.matches(&i, at("2026-12-11T03:00:00Z")),
        "Friday 03:00 is Thursday's"
    );
    let all_day =
        when(r#"{"time_window":{"days":["sat"],"from":"00:00","to":"00:00","time_zone":"UTC"}}"#);
    assert!(all_day.matches(&i, at("2026-12-12T13:00:00Z")));
    assert!(!all_day.matches(&i, at("2026-12-11T13:00:00Z")));

    // Outside its window a rule does nothing, whatever `match` says.
    let any = when(
        r#"{"match":"any","severity":["minor"],"time_window":{"from":"08:00","to":"09:00","time_zone":"UTC"}}"#,
    );
    assert!(!any.matches(&i, at("2026-12-07T12:00:00Z")));
    assert!(any.matches(&i, at("2026-12-07T08:30:00Z")));
}

#[test]
fn a_window_that_cannot_be_read_is_refused_by_field() {
    let bad = when(
        r#"{"status":[],"source_ids":[],"time_window":{"days":[],"from":"8:00","to":"25:00","time_zone":"Mars/Olympus"}}"#,
    );
    let errors = validate_conditions(&bad);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "when.status",
            "when.source_ids",
            "when.time_window.days",
            "when.time_window.from",
            "when.time_window.to",
            "when.time_window.time_zone",
        ]
    );
    assert!(errors[5]
        .message
        .contains("unknown time zone `Mars/Olympus`"));
    assert!(serde_json::from_str::<Conditions>(
        r#"{"time_window":{"days":["someday"],"from":"08:00","to":"09:00","time_zone":"UTC"}}"#
    )
    .is_err());
    // Unreadable windows (saved before a check existed) never hold.
    let i = incident(Uuid::now_v7(), Severity::Minor, &[]);
    assert!(!bad.matches(&i, Utc::now()));
}

#[test]
fn rules_fire_once_top_to_bottom_and_later_rules_see_their_edits() {
    let team = Uuid::now_v7();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let raise = rule(
        team,
        1,
        when(r#"{"attributes":{"env":"prod"}}"#),
        then(r#"{"set_severity":"critical","set_attributes":{"tier":"1"}}"#),
    );
    let criticals = rule(
        team,
        2,
        when(r#"{"severity":["critical"],"attributes":{"tier":"1"}}"#),
        forward(&[a]),
    );
    let held = rule(
        team,
        3,
        Conditions::default(),
        Actions {
            forward_to: vec![b],
            delay_seconds: Some(60),
            stop: true,
            ..Actions::default()
        },
    );
    let never = rule(
        team,
        4,
        Conditions::default(),
        then(r#"{"set_severity":"minor"}"#),
    );
    let rules = vec![
        never.clone(),
        held.clone(),
        criticals.clone(),
        raise.clone(),
    ];
    let i = incident(team, Severity::Warning, &[("env", "prod")]);
    let d = evaluate(&rules, &i, Utc::now(), &[]);
    assert_eq!(d.incident.severity, Severity::Critical);
    assert_eq!(d.incident.attributes["tier"], "1");
    let fired: Vec<Uuid> = d.fired.iter().map(|r| r.rule_id).collect();
    assert_eq!(
        fired,
        vec![raise.id, criticals.id, held.id],
        "stop: rule 4 not reached"
    );
    let forwarded: Vec<Uuid> = d.forwards.iter().map(|f| f.integration_id).collect();
    assert_eq!(forwarded, vec![a, b]);
    assert_eq!(
        d.hold.as_ref().map(|(r, s)| (r.rule_id, *s)),
        Some((held.id, 60))
    );
    assert_eq!(d.edits.len(), 2);
    assert!(d.discard.is_none());

    // Fired once: the same rules matching again do nothing more.
    let again = evaluate(&rules, &d.incident, Utc::now(), &fired);
    assert!(again.fired.is_empty() && again.forwards.is_empty() && again.edits.is_empty());
    assert!(again.hold.is_none());
    assert_eq!(again.incident, d.incident);
}

#[test]
fn continue_goes_on_and_exclusions_hold_while_they_match() {
    let team = Uuid::now_v7();
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let keep_out = rule(team, 1, when(r#"{"severity":["minor"]}"#), exclude(&[a]));
    let go_on = rule(
        team,
        2,
        Conditions::default(),
        then(r#"{"stop":false,"set_attributes":{"seen":"y"}}"#),
    );
    let last = rule(team, 3, Conditions::default(), forward(&[b]));
    let rules = vec![keep_out.clone(), go_on, last];
    let i = incident(team, Severity::Minor, &[]);
    let d = evaluate(&rules, &i, Utc::now(), &[]);
    assert_eq!(d.fired.len(), 3, "stop: false continues");
    let later = evaluate(&rules, &i, Utc::now(), &[keep_out.id]);
    assert!(
        later.is_excluded(a),
        "a fired exclusion still keeps the incident out"
    );
}

#[test]
fn discard_applies_to_alerts_only_and_ends_the_evaluation() {
    let team = Uuid::now_v7();
    let a = Uuid::now_v7();
    let noise = rule(
        team,
        1,
        when(r#"{"title_contains":"disk"}"#),
        then(r#"{"discard":true}"#),
    );
    let rules = vec![
        noise.clone(),
        rule(team, 2, Conditions::default(), forward(&[a])),
    ];
    let mut alert = incident(team, Severity::Minor, &[]);
    alert.source_id = Some(Uuid::now_v7());
    let d = evaluate_open(&rules, &alert, Utc::now());
    assert_eq!(d.discard.map(|r| r.rule_id), Some(noise.id));
    assert!(d.forwards.is_empty());
    // An incident that exists is not discarded when a change makes it match.
    let d = evaluate(&rules, &alert, Utc::now(), &[]);
    assert!(d.discard.is_none());
    assert_eq!(d.forwards.len(), 1);
    let by_person = incident(team, Severity::Minor, &[]);
    let d = evaluate_open(&rules, &by_person, Utc::now());
    assert!(d.discard.is_none());
    assert_eq!(d.forwards.len(), 1);
}

#[test]
fn an_alerts_repeat_keeps_what_fired_rules_set() {
    let team = Uuid::now_v7();
    let raise = rule(
        team,
        1,
        Conditions::default(),
        then(r#"{"set_severity":"critical","set_attributes":{"tier":"1"}}"#),
    );
    let other = rule(
        team,
        2,
        Conditions::default(),
        then(r#"{"set_severity":"minor"}"#),
    );
    let rules = vec![raise.clone(), other];
    let mut severity = Severity::Warning;
    let mut attributes = Some(Attributes::from([("env".to_owned(), "prod".to_owned())]));
    keep_rule_edits(&rules, team, &[raise.id], &mut severity, &mut attributes);
    assert_eq!(severity, Severity::Critical);
    assert_eq!(attributes.unwrap()["tier"], "1");
}

#[test]
fn actions_are_checked_by_field() {
    let fields = |json: &str| -> Vec<String> {
        validate_actions(&then(json))
            .into_iter()
            .map(|e| e.field)
            .collect()
    };
    assert_eq!(fields(r#"{"delay_seconds":0}"#), vec!["then.delay_seconds"]);
    assert_eq!(
        fields(r#"{"delay_seconds":86401}"#),
        vec!["then.delay_seconds"]
    );
    assert!(fields(r#"{"delay_seconds":60}"#).is_empty());
    assert_eq!(
        fields(r#"{"set_attributes":{"ok":"a\u0000b"}}"#),
        vec!["then.set_attributes.ok"]
    );
    assert_eq!(
        fields(r#"{"discard":true,"delay_seconds":5}"#),
        vec!["then.discard"]
    );
    assert!(serde_json::from_str::<Actions>(r#"{"set_severity":"huge"}"#).is_err());
    assert!(!then(r#"{"discard":true}"#).is_empty());
    assert!(Actions::default().is_empty());
}
