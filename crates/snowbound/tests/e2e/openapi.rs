//! `GET /api/v1/openapi.json` of a running node: an OpenAPI 3.1 document (as `oas3` reads
//! it) whose every `$ref` resolves, and which lists every route the node serves. The
//! routes are read from the routers themselves and probed over HTTP, so a route added
//! without its `#[utoipa::path]` (a plain `.route(...)`) fails
//! `every_route_served_is_in_the_document`.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::Value;
use snowbound_testkit::{Backend, TestApp};

async fn document(app: &TestApp) -> (String, Value) {
    let answer = app
        .api
        .call_anonymous(Method::GET, "/api/v1/openapi.json", None)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    (answer.text, answer.body)
}

/// Every `$ref` in `value`, with where it is.
fn refs(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(object) => {
            for (key, inner) in object {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => found.push((at.to_owned(), target.clone())),
                    _ => refs(inner, &format!("{at}/{key}"), found),
                }
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter().enumerate() {
                refs(inner, &format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_and_every_ref_resolves() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (text, doc) = document(&app).await;

    let spec = oas3::from_json(&text).expect("the document reads as OpenAPI 3.1");
    let version = spec
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));
    assert_eq!(doc["openapi"], "3.1.0");

    let mut found = Vec::new();
    refs(&doc, "", &mut found);
    assert!(found.len() > 50, "the schemas are referenced: {found:?}");
    let dangling: Vec<_> = found
        .iter()
        .filter(|(_, target)| {
            target
                .strip_prefix('#')
                .is_none_or(|pointer| doc.pointer(pointer).is_none())
        })
        .collect();
    assert!(dangling.is_empty(), "$refs to nothing: {dangling:?}");

    let mut ids = BTreeSet::new();
    for (path, method, operation) in spec.operations() {
        let id = operation.operation_id.clone().unwrap_or_default();
        assert!(
            ids.insert(id.clone()),
            "{method} {path}: operationId `{id}` twice or none"
        );
    }

    // The error shape and the security schemes the operations point to.
    let error = &doc["components"]["schemas"]["ErrorDetail"];
    for key in ["code", "message", "field", "fields"] {
        assert!(error["properties"].get(key).is_some(), "ErrorDetail.{key}");
    }
    let create = &doc["paths"]["/api/v1/incidents"]["post"];
    assert_eq!(
        create["responses"]["422"]["$ref"],
        "#/components/responses/InvalidField"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["api_token"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"][0]["api_token"], Value::Array(Vec::new()));
    let open = &doc["paths"]["/ingest/{secret}"]["post"]["security"];
    assert_eq!(open, &serde_json::json!([{}]), "ingest needs no token");
}

/// A request path for a route template: every parameter an id no object has.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                uuid::Uuid::now_v7().to_string()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_served_is_in_the_document() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (text, _) = document(&app).await;
    let spec = oas3::from_json(&text).expect("the document reads as OpenAPI 3.1");
    let documented: BTreeSet<(String, String)> = spec
        .operations()
        .map(|(path, method, _)| (method.to_string(), path))
        .collect();

    let templates = snowbound_server::openapi::served_route_templates();
    for expected in [
        "/api/v1/incidents/{id}",
        "/ingest/{secret}",
        "/readyz",
        "/metrics",
    ] {
        assert!(
            templates.contains(expected),
            "the routers' routes were read: {templates:?}"
        );
    }
    // A method a path does not route answers 405; any other answer (401, 404 for an
    // unknown id, 415 for a missing body…) means a handler took it.
    let mut served = BTreeSet::new();
    for template in &templates {
        let path = concrete(template);
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            let answer = app.api.call(method.clone(), &path, None).await;
            if answer.status == 405 {
                continue;
            }
            assert!(
                answer.code() != "not_found" || !answer.text.contains("no such route"),
                "{method} {path} matched no route"
            );
            served.insert((method.to_string(), template.clone()));
        }
    }

    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served without an operation in /api/v1/openapi.json: {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "in the document but not served: {unserved:?}"
    );
}
