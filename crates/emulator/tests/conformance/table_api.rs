//! Conformance: the Table API surface (docs/servicenow/TABLE_API.md §1 and §2).

use crate::common::*;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn s1_1_create_is_201_with_location_echoing_prefix_and_result_envelope() {
    let env = start().await;
    for prefix in ["/api/now/table", "/api/now/v2/table", "/api/now/v1/table"] {
        let resp = env
            .post(
                &format!("{prefix}/incident"),
                json!({"short_description": "x"}),
            )
            .await;
        assert_eq!(resp.status(), 201);
        assert_eq!(
            resp.headers()["content-type"],
            "application/json;charset=UTF-8"
        );
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        let result = body(resp).await["result"].clone();
        let sys_id = result["sys_id"].as_str().unwrap();
        assert_eq!(location, env.url(&format!("{prefix}/incident/{sys_id}")));
    }
}

#[tokio::test]
async fn s1_3_all_values_are_strings() {
    let env = start().await;
    let r = env
        .create_incident(json!({"short_description": "x", "urgency": 2, "impact": 2}))
        .await;
    for (k, v) in r.as_object().unwrap() {
        // Reference fields are objects with link and value unless excluded (§2.3).
        match v {
            Value::String(_) => {}
            Value::Object(o) => assert!(o["value"].is_string() && o["link"].is_string(), "{k}"),
            other => panic!("{k} is {other}"),
        }
    }
    assert_eq!(r["urgency"], "2");
    assert_eq!(r["priority"], "3");
}

#[tokio::test]
async fn s1_1_get_put_patch_delete_one_record() {
    let env = start().await;
    let r = env.create_incident(json!({"short_description": "a"})).await;
    let id = r["sys_id"].as_str().unwrap();
    let path = format!("/api/now/table/incident/{id}");
    let got = body(env.get(&path).await).await;
    assert_eq!(got["result"]["short_description"], "a");

    let put = env
        .req(Method::PUT, &path)
        .json(&json!({"description": "d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let put = body(put).await;
    // PUT changes only the supplied fields (§1.1).
    assert_eq!(put["result"]["short_description"], "a");
    assert_eq!(put["result"]["description"], "d");

    let patch = env.patch(&path, json!({"short_description": "b"})).await;
    assert_eq!(patch.status(), 200);
    assert_eq!(body(patch).await["result"]["sys_mod_count"], "2");

    let del = env.req(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(del.status(), 204);
    assert_eq!(del.text().await.unwrap(), "");
    let gone = env.get(&path).await;
    assert_eq!(gone.status(), 404);
    assert_eq!(
        body(gone).await,
        error(
            "No Record found",
            Some("Record doesn't exist or ACL restricts the record retrieval")
        )
    );
}

#[tokio::test]
async fn s1_6_404_for_unknown_sys_id_on_every_verb() {
    let env = start().await;
    let path = "/api/now/table/incident/0123456789abcdef0123456789abcdef";
    for m in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
        let resp = env
            .req(m.clone(), path)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404, "{m}");
        assert_eq!(body(resp).await["error"]["message"], "No Record found");
    }
}

#[tokio::test]
async fn s1_6_invalid_table_is_400_with_null_detail() {
    let env = start().await;
    let resp = env.get("/api/now/table/no_such_table").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(body(resp).await, error("Invalid table no_such_table", None));
    let resp = env.post("/api/now/v2/table/no_such_table", json!({})).await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn s1_6_bad_json_is_400_exception_while_reading_request() {
    let env = start().await;
    let resp = env
        .req(Method::POST, "/api/now/table/incident")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        body(resp).await,
        error(
            "Exception while reading request",
            Some("The payload is not valid JSON.")
        )
    );
    assert!(env.emu.records("incident").is_empty(), "nothing written");
}

#[tokio::test]
async fn s1_6_405_for_verbs_a_resource_does_not_support() {
    let env = start().await;
    let r = env.create_incident(json!({})).await;
    let id = r["sys_id"].as_str().unwrap();
    let resp = env
        .post(&format!("/api/now/table/incident/{id}"), json!({}))
        .await;
    assert_eq!(resp.status(), 405);
    assert_eq!(body(resp).await["status"], "failure");
    let resp = env
        .req(Method::DELETE, "/api/now/table/incident")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn s1_6_unmatched_api_uri_is_400() {
    let env = start().await;
    let resp = env.get("/api/now/nothing/here").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        body(resp).await,
        error("Requested URI does not represent any resource", None)
    );
}

#[tokio::test]
async fn s1_2_x_no_response_body_suppresses_the_record() {
    let env = start().await;
    let resp = env
        .req(Method::POST, "/api/now/table/incident")
        .header("X-no-response-body", "true")
        .json(&json!({"short_description": "quiet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(resp.headers().contains_key("location"));
    assert_eq!(resp.text().await.unwrap(), "");
    assert_eq!(env.emu.records("incident").len(), 1);
}

#[tokio::test]
async fn s1_1_array_body_only_first_record_is_processed() {
    let env = start().await;
    let resp = env
        .post(
            "/api/now/table/incident",
            json!([{"short_description": "one"}, {"short_description": "two"}]),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let recs = env.emu.records("incident");
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["short_description"], "one");
}

#[tokio::test]
async fn s2_2_paging_headers_total_count_and_link() {
    let env = start().await;
    for i in 0..5 {
        env.create_incident(json!({"short_description": format!("n{i}")}))
            .await;
    }
    let resp = env
        .get("/api/now/table/incident?sysparm_limit=2&sysparm_offset=2&sysparm_fields=short_description")
        .await;
    assert_eq!(resp.headers()["x-total-count"], "5");
    let link = resp.headers()["link"].to_str().unwrap().to_string();
    let b = body(resp).await;
    assert_eq!(
        b["result"],
        json!([{"short_description": "n2"}, {"short_description": "n3"}])
    );
    for rel in ["first", "prev", "next", "last"] {
        assert!(link.contains(&format!("rel=\"{rel}\"")), "{link}");
    }
    assert!(link.contains("sysparm_offset=4>;rel=\"last\""), "{link}");
    assert!(link.contains("sysparm_fields=short_description"), "{link}");
    // Last page: no next.
    let resp = env
        .get("/api/now/table/incident?sysparm_limit=2&sysparm_offset=4")
        .await;
    let link = resp.headers()["link"].to_str().unwrap();
    assert!(!link.contains("rel=\"next\""));
    assert_eq!(body(resp).await["result"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn s2_1_default_limit_is_10000() {
    let env = start().await;
    env.create_incident(json!({})).await;
    let resp = env.get("/api/now/table/incident").await;
    let link = resp.headers()["link"].to_str().unwrap().to_string();
    assert!(link.contains("sysparm_limit=10000"), "{link}");
}

#[tokio::test]
async fn s1_1_v2_empty_list_is_200_and_v1_is_404() {
    let env = start().await;
    let resp = env
        .get("/api/now/v2/table/incident?sysparm_query=number=NOPE")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(body(resp).await, json!({"result": []}));
    let resp = env
        .get("/api/now/v1/table/incident?sysparm_query=number=NOPE")
        .await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn s2_4_encoded_queries_filter_and_order() {
    let env = start().await;
    for (sd, urgency, corr) in [
        ("disk full", 1, "a-1"),
        ("cpu hot", 2, "a-2"),
        ("Disk slow", 3, ""),
    ] {
        env.create_incident(
            json!({"short_description": sd, "urgency": urgency, "correlation_id": corr}),
        )
        .await;
    }
    let q = |query: &str| {
        let env = &env;
        let query = query.to_string();
        async move {
            let resp = env
                .req(Method::GET, "/api/now/table/incident")
                .query(&[
                    ("sysparm_query", query.as_str()),
                    ("sysparm_fields", "short_description"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            body(resp).await["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["short_description"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        q("short_descriptionLIKEdisk^ORDERBYDESCurgency").await,
        ["Disk slow", "disk full"]
    );
    assert_eq!(
        q("urgency=1^ORurgency=2^ORDERBYurgency").await,
        ["disk full", "cpu hot"]
    );
    assert_eq!(q("urgency!=1").await, ["cpu hot", "Disk slow"]);
    assert_eq!(q("short_descriptionSTARTSWITHcpu").await, ["cpu hot"]);
    assert_eq!(q("short_descriptionENDSWITHslow").await, ["Disk slow"]);
    assert_eq!(q("urgencyIN1,3").await, ["disk full", "Disk slow"]);
    assert_eq!(q("urgencyNOT IN1,3").await, ["cpu hot"]);
    assert_eq!(q("correlation_idISEMPTY").await, ["Disk slow"]);
    assert_eq!(
        q("correlation_idISNOTEMPTY^ORDERBYDESCcorrelation_id").await,
        ["cpu hot", "disk full"]
    );
    // Unknown fields are silently ignored (§2.4), the rest still applies.
    assert_eq!(q("u_nosuch=1^urgency=2").await, ["cpu hot"]);
    assert_eq!(q("u_nosuch=1").await.len(), 3);
}

#[tokio::test]
async fn s2_1_plain_field_pairs_filter_when_no_sysparm_query() {
    let env = start().await;
    env.create_incident(json!({"correlation_id": "k1"})).await;
    env.create_incident(json!({"correlation_id": "k2"})).await;
    let resp = env
        .get("/api/now/table/incident?correlation_id=k2&state=New")
        .await;
    let b = body(resp).await;
    assert_eq!(b["result"].as_array().unwrap().len(), 1);
    assert_eq!(b["result"][0]["correlation_id"], "k2");
}

#[tokio::test]
async fn s2_1_sysparm_fields_ignores_unknown_names() {
    let env = start().await;
    let r = env.create_incident(json!({})).await;
    let id = r["sys_id"].as_str().unwrap();
    let resp = env
        .get(&format!(
            "/api/now/table/incident/{id}?sysparm_fields=number,state,bogus"
        ))
        .await;
    let b = body(resp).await;
    let keys: Vec<_> = b["result"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["number", "state"]);
}

#[tokio::test]
async fn s2_3_display_value_modes_and_reference_links() {
    let env = start().await;
    let r = env
        .create_incident(json!({"urgency": "1", "impact": "1"}))
        .await;
    let id = r["sys_id"].as_str().unwrap();
    let admin_id = env.emu.user_sys_id("admin").unwrap();
    // false: raw values; references are {link, value} with the caller's prefix.
    assert_eq!(r["state"], "1");
    assert_eq!(
        r["opened_by"],
        json!({"link": env.url(&format!("/api/now/table/sys_user/{admin_id}")), "value": admin_id})
    );
    let path = format!("/api/now/v2/table/incident/{id}?sysparm_fields=state,priority,opened_by");
    let b = body(env.get(&format!("{path}&sysparm_display_value=true")).await).await;
    assert_eq!(b["result"]["state"], "New");
    assert_eq!(b["result"]["priority"], "1 - Critical");
    assert_eq!(
        b["result"]["opened_by"],
        json!({"display_value": "admin", "link": env.url(&format!("/api/now/v2/table/sys_user/{admin_id}"))})
    );
    let b = body(
        env.get(&format!(
            "{path}&sysparm_display_value=true&sysparm_exclude_reference_link=true"
        ))
        .await,
    )
    .await;
    assert_eq!(b["result"]["opened_by"], "admin");
    let b = body(
        env.get(&format!(
            "{path}&sysparm_display_value=all&sysparm_exclude_reference_link=true"
        ))
        .await,
    )
    .await;
    assert_eq!(
        b["result"]["state"],
        json!({"display_value": "New", "value": "1"})
    );
    assert_eq!(
        b["result"]["opened_by"],
        json!({"display_value": "admin", "value": admin_id})
    );
    let b = body(
        env.get(&format!("{path}&sysparm_exclude_reference_link=true"))
            .await,
    )
    .await;
    assert_eq!(b["result"]["opened_by"], admin_id);
}
