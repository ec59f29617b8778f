#![no_main]
//! Snowbound's webhook parser reads whatever a sender posts to `/ingest/{secret}`: any
//! bytes must give an alert or a 4xx error naming the field, never a panic.

use libfuzzer_sys::fuzz_target;
use snowbound_fuzz::source;

fuzz_target!(|data: &[u8]| {
    if let Err(error) = snowbound_core::ingest::webhook::parse(data, &source()) {
        assert!((400..500).contains(&error.status()));
    }
});
