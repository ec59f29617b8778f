//! Reference tables and display-value input, `sys_journal_field` rows for journal
//! writes, and Closed incidents locked for non-admins.

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};

const NETWORK_L2: &str = "287ee6fea9fe198100ada7950d0b1b73";
const DB_1: &str = "27d32778c0a8000b00db970eeaa60f16";

async fn result(resp: reqwest::Response) -> Value {
    assert!(resp.status().is_success(), "{}", resp.status());
    body(resp).await["result"].clone()
}

#[tokio::test]
async fn reference_tables_have_rows() {
    let env = start_with(users_config()).await;
    for (table, name) in [("sys_user_group", "Network L2"), ("cmdb_ci", "db-1")] {
        let rows = result(
            env.get(&format!("/api/now/table/{table}?sysparm_query=name={name}"))
                .await,
        )
        .await;
        assert_eq!(rows.as_array().unwrap().len(), 1, "{table}");
    }
    let users = result(
        env.get("/api/now/table/sys_user?sysparm_query=user_name=agent")
            .await,
    )
    .await;
    assert_eq!(users.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn display_values_resolve_to_sys_ids_on_write() {
    let env = start_with(users_config()).await;
    let created = result(
        env.post(
            "/api/now/table/incident?sysparm_input_display_value=true&sysparm_exclude_reference_link=true",
            json!({"short_description": "x", "assignment_group": "Network L2",
                   "cmdb_ci": "db-1", "caller_id": "agent"}),
        )
        .await,
    )
    .await;
    assert_eq!(created["assignment_group"], NETWORK_L2);
    assert_eq!(created["cmdb_ci"], DB_1);
    assert_eq!(created["caller_id"].as_str().unwrap().len(), 32);

    let sys_id = created["sys_id"].as_str().unwrap();
    let path = format!("/api/now/table/incident/{sys_id}?sysparm_display_value=true&sysparm_exclude_reference_link=true");
    let read = result(env.get(&path).await).await;
    assert_eq!(read["assignment_group"], "Network L2");

    // Without the flag the value is taken as the sys_id it should be.
    let raw = result(
        env.patch(
            &format!("/api/now/table/incident/{sys_id}?sysparm_exclude_reference_link=true"),
            json!({"cmdb_ci": "27d3f35cc0a8000b001df42d019a418f"}),
        )
        .await,
    )
    .await;
    assert_eq!(raw["cmdb_ci"], "27d3f35cc0a8000b001df42d019a418f");
    // A name that matches nothing leaves the field as it was.
    let unknown = result(
        env.patch(
            &format!("/api/now/table/incident/{sys_id}?sysparm_input_display_value=true&sysparm_exclude_reference_link=true"),
            json!({"assignment_group": "No Such Group"}),
        )
        .await,
    )
    .await;
    assert_eq!(unknown["assignment_group"], NETWORK_L2);
}

#[tokio::test]
async fn every_journal_write_is_a_sys_journal_field_row() {
    let env = start_with(users_config()).await;
    let created = env
        .create_incident(json!({"short_description": "x", "work_notes": "first"}))
        .await;
    let sys_id = created["sys_id"].as_str().unwrap();
    env.patch(
        &format!("/api/now/table/incident/{sys_id}?sysparm_exclude_reference_link=true"),
        json!({"work_notes": "second", "comments": "public"}),
    )
    .await;
    let rows = result(
        env.get(&format!(
            "/api/now/table/sys_journal_field?sysparm_query=element_id={sys_id}^element=work_notes"
        ))
        .await,
    )
    .await;
    let values: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, vec!["first", "second"]);
    assert!(rows[0]["name"] == "incident");
    // Written by the platform only.
    let refused = env
        .post(
            "/api/now/table/sys_journal_field",
            json!({"element_id": sys_id, "element": "work_notes", "value": "forged"}),
        )
        .await;
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn closed_records_are_read_only_for_non_admins() {
    let env = start_with(users_config()).await;
    let created = env.create_incident(json!({"short_description": "x"})).await;
    let sys_id = created["sys_id"].as_str().unwrap();
    let path = format!("/api/now/table/incident/{sys_id}");
    let mut close = Env::resolve_body().await;
    close["state"] = json!("7");
    assert_eq!(result(env.patch(&path, close).await).await["state"], "7");

    let refused = env
        .as_user(Method::PATCH, &path, "agent", "pw")
        .json(&json!({"urgency": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    // An admin still may: here, reopen it.
    let reopened = result(env.patch(&path, json!({"state": "1"})).await).await;
    assert_eq!(reopened["state"], "1");
    let allowed = env
        .as_user(Method::PATCH, &path, "agent", "pw")
        .json(&json!({"urgency": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
}
