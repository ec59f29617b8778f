#![no_main]
//! A `json` source reads any bytes through its mapping, and the preview shows any kept
//! payload: neither may panic, and a refusal is a 4xx.

use libfuzzer_sys::fuzz_target;
use snowbound_core::ingest::json_mapping::{parse, preview, JsonMapping};

fuzz_target!(|data: &[u8]| {
    let mapping: JsonMapping = serde_json::from_value(serde_json::json!({
        "dedup_key": "$.id", "title": "$.title", "description": "$..message",
        "status": {"path": "$.state", "map": {"ok": "resolved"}, "default": "open"},
        "severity": {"path": "$.p", "map": {"P1": "critical"}},
        "attributes": {"tags": "$.tags[*]", "first": "$[0]"}
    }))
    .unwrap();
    let _ = preview(&mapping, data);
    if let Err(error) = parse(&mapping, data) {
        assert!((400..500).contains(&error.status()));
    }
});
