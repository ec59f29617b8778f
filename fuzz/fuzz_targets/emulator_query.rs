#![no_main]
//! The encoded-query parser (the emulator's) takes whatever a client sends in `sysparm_query`;
//! it must never panic, and parsing must be deterministic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            snowbound_encoded_query::parse(text),
            snowbound_encoded_query::parse(text)
        );
    }
});
