//! Conformance: incident fields, defaults and business rules (docs/servicenow/TABLE_API.md §3), the
//! close-fields data policy (§3.5) and sys_choice (§4).

use crate::common::*;
use reqwest::Method;
use serde_json::json;
use snowbound_emulator::EmulatorConfig;

#[tokio::test]
async fn s3_1_defaults_of_a_fresh_incident() {
    let env = start().await;
    let r = env.create_incident(json!({"short_description": "x"})).await;
    assert_eq!(r["number"], "INC0010001");
    let sys_id = r["sys_id"].as_str().unwrap();
    assert_eq!(sys_id.len(), 32);
    assert!(sys_id
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    for (k, v) in [
        ("state", "1"),
        ("incident_state", "1"),
        ("active", "true"),
        ("impact", "3"),
        ("urgency", "3"),
        ("priority", "5"),
        ("severity", "3"),
        ("category", "inquiry"),
        ("sys_mod_count", "0"),
        ("reopen_count", "0"),
        ("sys_created_by", "admin"),
        ("sys_updated_by", "admin"),
        ("sys_class_name", "incident"),
        ("close_code", ""),
        ("correlation_id", ""),
        ("correlation_display", ""),
        ("resolved_at", ""),
    ] {
        assert_eq!(r[k], v, "{k}");
    }
    assert_eq!(r["opened_at"], r["sys_created_on"]);
    assert_eq!(r["sys_updated_on"], r["sys_created_on"]);
    let created = r["sys_created_on"].as_str().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(created, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{created}"
    );
    assert_eq!(
        r["opened_by"]["value"],
        env.emu.user_sys_id("admin").unwrap()
    );
    let second = env.create_incident(json!({})).await;
    assert_eq!(second["number"], "INC0010002");
}

#[tokio::test]
async fn s3_3_priority_follows_urgency_impact_matrix_on_insert_and_update() {
    let env = start().await;
    let r = env
        .create_incident(json!({"urgency": "2", "impact": "2"}))
        .await;
    assert_eq!(r["priority"], "3");
    let id = r["sys_id"].as_str().unwrap();
    let r = body(
        env.patch(
            &format!("/api/now/table/incident/{id}"),
            json!({"urgency": "1", "impact": "1"}),
        )
        .await,
    )
    .await;
    assert_eq!(r["result"]["priority"], "1");
    // priority is computed, not writable.
    let r = body(
        env.patch(
            &format!("/api/now/table/incident/{id}"),
            json!({"priority": "5", "impact": "3"}),
        )
        .await,
    )
    .await;
    assert_eq!(r["result"]["priority"], "3");
}

#[tokio::test]
async fn s3_1_state_and_incident_state_stay_equal() {
    let env = start().await;
    let r = env.create_incident(json!({"state": "2"})).await;
    assert_eq!(r["incident_state"], "2");
    let id = r["sys_id"].as_str().unwrap();
    let r = body(
        env.patch(
            &format!("/api/now/table/incident/{id}"),
            json!({"incident_state": "3"}),
        )
        .await,
    )
    .await;
    assert_eq!(r["result"]["state"], "3");
    assert_eq!(r["result"]["incident_state"], "3");
}

#[tokio::test]
async fn s3_5_resolve_sets_resolved_fields_close_sets_closed_and_inactive() {
    let env = start().await;
    let r = env.create_incident(json!({"short_description": "x"})).await;
    let path = format!("/api/now/table/incident/{}", r["sys_id"].as_str().unwrap());
    let resp = env.patch(&path, Env::resolve_body().await).await;
    assert_eq!(resp.status(), 200);
    let r = body(resp).await["result"].clone();
    assert_eq!(r["state"], "6");
    assert_eq!(r["active"], "true");
    assert_ne!(r["resolved_at"], "");
    assert_eq!(
        r["resolved_by"]["value"],
        env.emu.user_sys_id("admin").unwrap()
    );
    let r = body(env.patch(&path, json!({"state": "7"})).await).await["result"].clone();
    assert_eq!(r["active"], "false");
    assert_ne!(r["closed_at"], "");
}

#[tokio::test]
async fn s3_2_canceled_is_inactive() {
    let env = start().await;
    let r = env.create_incident(json!({"state": "8"})).await;
    assert_eq!(r["active"], "false");
}

#[tokio::test]
async fn s3_2_reopen_from_resolved_counts_and_stamps() {
    let env = start().await;
    let r = env.create_incident(json!({})).await;
    let path = format!("/api/now/table/incident/{}", r["sys_id"].as_str().unwrap());
    env.patch(&path, Env::resolve_body().await).await;
    let r = body(env.patch(&path, json!({"state": "2"})).await).await["result"].clone();
    assert_eq!(r["reopen_count"], "1");
    assert_ne!(r["reopened_time"], "");
    assert_eq!(r["active"], "true");
    env.patch(&path, Env::resolve_body().await).await;
    let r = body(env.patch(&path, json!({"state": "1"})).await).await["result"].clone();
    assert_eq!(r["reopen_count"], "2");
}

#[tokio::test]
async fn s3_1_short_description_truncated_to_160() {
    let env = start().await;
    let long = "é".repeat(200);
    let r = env
        .create_incident(json!({"short_description": long}))
        .await;
    assert_eq!(
        r["short_description"].as_str().unwrap().chars().count(),
        160
    );
}

#[tokio::test]
async fn s2_5_unknown_fields_ignored_and_record_still_created() {
    let env = start().await;
    let r = env
        .create_incident(json!({"u_nope": "x", "short_description": "ok"}))
        .await;
    assert!(r.get("u_nope").is_none());
    assert_eq!(r["short_description"], "ok");
    // sys_ fields are not writable.
    let r = env
        .create_incident(json!({"sys_created_by": "mallory"}))
        .await;
    assert_eq!(r["sys_created_by"], "admin");
}

#[tokio::test]
async fn s2_5_journal_fields_are_write_only_and_kept_as_entries() {
    let env = start().await;
    let r = env
        .create_incident(json!({"work_notes": "first note", "comments": "hello"}))
        .await;
    assert_eq!(r["work_notes"], "");
    assert_eq!(r["comments"], "");
    let id = r["sys_id"].as_str().unwrap().to_string();
    let path = format!("/api/now/table/incident/{id}");
    let r = body(env.patch(&path, json!({"work_notes": "second"})).await).await["result"].clone();
    assert_eq!(r["work_notes"], "");
    assert_eq!(r["sys_mod_count"], "1", "a journal entry is an update");
    let j = env.emu.journal("incident", &id);
    let mut entries: Vec<_> = j
        .iter()
        .map(|e| (e.element.as_str(), e.value.as_str()))
        .collect();
    assert_eq!(
        entries.pop(),
        Some(("work_notes", "second")),
        "oldest first"
    );
    entries.sort();
    assert_eq!(
        entries,
        [("comments", "hello"), ("work_notes", "first note")]
    );
    assert!(j
        .iter()
        .all(|e| e.sys_created_by == "admin" && e.element_id == id));
    let ctl: serde_json::Value = env
        .http
        .get(env.url(&format!("/emulator/journal/incident/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ctl["entries"].as_array().unwrap().len(), 3);
    // With display values the journal shows its entries.
    let b = body(
        env.get(&format!(
            "{path}?sysparm_display_value=true&sysparm_fields=work_notes"
        ))
        .await,
    )
    .await;
    assert!(b["result"]["work_notes"]
        .as_str()
        .unwrap()
        .contains("second"));
}

#[tokio::test]
async fn s3_5_data_policy_refuses_resolve_without_close_fields_exact_body() {
    let env = start().await;
    let r = env.create_incident(json!({"short_description": "x"})).await;
    let id = r["sys_id"].as_str().unwrap();
    let path = format!("/api/now/table/incident/{id}");
    let resp = env.patch(&path, json!({"state": "6"})).await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        resp.text().await.unwrap(),
        r#"{"error":{"message":"Operation Failed","detail":"Data Policy Exception: \n\tThe following fields are mandatory: Resolution code, Resolution notes"},"status":"failure"}"#
    );
    // Only the missing field's label is listed.
    let resp = env
        .patch(&path, json!({"state": "7", "close_code": "Duplicate"}))
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        body(resp).await["error"]["detail"],
        "Data Policy Exception: \n\tThe following fields are mandatory: Resolution notes"
    );
    // Nothing was written.
    let rec = env.emu.record("incident", id).unwrap();
    assert_eq!(rec["state"], "1");
    assert_eq!(rec["close_code"], "");
    assert_eq!(rec["sys_mod_count"], "0");
}

#[tokio::test]
async fn s3_5_data_policy_applies_on_insert_too() {
    let env = start().await;
    let resp = env
        .post(
            "/api/now/table/incident",
            json!({"state": "6", "close_notes": "n"}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert_eq!(
        body(resp).await,
        error(
            "Operation Failed",
            Some("Data Policy Exception: \n\tThe following fields are mandatory: Resolution code")
        )
    );
    assert!(env.emu.records("incident").is_empty());
    let resp = env
        .post("/api/now/table/incident", Env::resolve_body().await)
        .await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn s3_4_inactive_legacy_close_code_counts_as_empty() {
    let env = start().await;
    let resp = env
        .post(
            "/api/now/table/incident",
            json!({"state": "6", "close_code": "Solved (Permanently)", "close_notes": "n"}),
        )
        .await;
    assert_eq!(resp.status(), 403);
    assert!(body(resp).await["error"]["detail"]
        .as_str()
        .unwrap()
        .ends_with("mandatory: Resolution code"));
    // Switchable.
    let env = start_with(EmulatorConfig {
        inactive_close_code_is_empty: false,
        ..Default::default()
    })
    .await;
    let resp = env
        .post(
            "/api/now/table/incident",
            json!({"state": "6", "close_code": "Solved (Permanently)", "close_notes": "n"}),
        )
        .await;
    assert_eq!(resp.status(), 201);
}

#[tokio::test]
async fn s3_5_data_policy_can_be_switched_off() {
    let env = start_with(EmulatorConfig {
        data_policy: false,
        ..Default::default()
    })
    .await;
    let r = env.create_incident(json!({"state": "6"})).await;
    assert_eq!(r["state"], "6");
    assert_ne!(r["resolved_at"], "");
}

#[tokio::test]
async fn s3_1_extra_tables_extend_incident_with_own_prefix() {
    let env = start_with(EmulatorConfig {
        extra_tables: vec!["u_ops_incident:OPS".into(), "u_plain_child".into()],
        ..Default::default()
    })
    .await;
    let r = body(
        env.post(
            "/api/now/table/u_ops_incident",
            json!({"urgency": 1, "impact": 1}),
        )
        .await,
    )
    .await["result"]
        .clone();
    assert_eq!(r["number"], "OPS0010001");
    assert_eq!(r["priority"], "1");
    assert_eq!(r["sys_class_name"], "u_ops_incident");
    let resp = env
        .post("/api/now/table/u_ops_incident", json!({"state": "6"}))
        .await;
    assert_eq!(resp.status(), 403, "same data policy");
    let r = body(env.post("/api/now/table/u_plain_child", json!({})).await).await["result"].clone();
    assert_eq!(
        r["number"], "INC0010001",
        "default prefix shares incident's sequence"
    );
    // The parent table lists its children's records; a child lists only its own.
    assert_eq!(
        body(env.get("/api/now/table/incident").await).await["result"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        body(env.get("/api/now/table/u_ops_incident").await).await["result"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(env.emu.records("u_ops_incident").len(), 1);
}

#[tokio::test]
async fn s7_records_by_correlation_id() {
    let env = start().await;
    env.create_incident(json!({"correlation_id": "alert-7", "correlation_display": "snowbound"}))
        .await;
    env.create_incident(json!({"correlation_id": "alert-8"}))
        .await;
    let found = env.emu.records_by_correlation_id("incident", "alert-7");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["correlation_display"], "snowbound");
}

#[tokio::test]
async fn s4_sys_choice_preloaded_and_queryable() {
    let env = start().await;
    let resp = env
        .req(Method::GET, "/api/now/table/sys_choice")
        .query(&[
            (
                "sysparm_query",
                "name=incident^element=state^inactive=false^language=en^ORDERBYsequence",
            ),
            ("sysparm_fields", "value,label,sequence,dependent_value"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let b = body(resp).await;
    let pairs: Vec<(String, String)> = b["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["value"].as_str().unwrap().into(),
                r["label"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expect = [
        ("1", "New"),
        ("2", "In Progress"),
        ("3", "On Hold"),
        ("6", "Resolved"),
        ("7", "Closed"),
        ("8", "Canceled"),
    ];
    assert_eq!(pairs, expect.map(|(a, b)| (a.to_string(), b.to_string())));

    // §3.4 current close codes are active; legacy ones exist but are inactive.
    let q = |query: &'static str| {
        let env = &env;
        async move {
            body(
                env.req(Method::GET, "/api/now/table/sys_choice")
                    .query(&[("sysparm_query", query)])
                    .send()
                    .await
                    .unwrap(),
            )
            .await["result"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let active: Vec<String> = q("name=incident^element=close_code^inactive=false")
        .await
        .iter()
        .map(|r| r["value"].as_str().unwrap().into())
        .collect();
    for code in [
        "Duplicate",
        "Known error",
        "No resolution provided",
        "Resolved by caller",
        "Resolved by change",
        "Resolved by problem",
        "Resolved by request",
        "Solution provided",
        "Workaround provided",
    ] {
        assert!(active.contains(&code.to_string()), "{code}");
    }
    let inactive = q("name=incident^element=close_code^inactive=true").await;
    assert!(!inactive.is_empty());
    let row = &inactive[0];
    for f in [
        "name",
        "element",
        "value",
        "label",
        "sequence",
        "inactive",
        "language",
        "dependent_value",
        "sys_id",
    ] {
        assert!(row[f].is_string(), "{f}");
    }
    for element in [
        "incident_state",
        "urgency",
        "impact",
        "priority",
        "hold_reason",
    ] {
        assert!(
            !q(Box::leak(
                format!("name=incident^element={element}").into_boxed_str()
            ))
            .await
            .is_empty(),
            "{element}"
        );
    }
}

#[tokio::test]
async fn s4_display_labels_come_from_sys_choice() {
    let env = start().await;
    let r = env.create_incident(json!({})).await;
    let id = r["sys_id"].as_str().unwrap();
    // Relabel "New" through the Table API; display values follow.
    let rows = body(
        env.get("/api/now/table/sys_choice?sysparm_query=name=incident^element=state^value=1")
            .await,
    )
    .await;
    let choice_id = rows["result"][0]["sys_id"].as_str().unwrap().to_string();
    let resp = env
        .patch(
            &format!("/api/now/table/sys_choice/{choice_id}"),
            json!({"label": "Brand new"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let b = body(
        env.get(&format!(
            "/api/now/table/incident/{id}?sysparm_display_value=true"
        ))
        .await,
    )
    .await;
    assert_eq!(b["result"]["state"], "Brand new");
}
