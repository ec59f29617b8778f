#![no_main]
//! The Grafana parser reads whatever is posted to a `grafana` source's `/ingest/{secret}`:
//! any bytes must give alerts or a 4xx error naming the field, never a panic.

use libfuzzer_sys::fuzz_target;
use snowbound_fuzz::source;

fuzz_target!(|data: &[u8]| {
    if let Err(error) = snowbound_core::ingest::grafana::parse(data, &source()) {
        assert!((400..500).contains(&error.status()));
    }
});
