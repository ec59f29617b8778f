#![no_main]
//! The emulator's encoded-query parser takes whatever a client sends in `sysparm_query`;
//! it must never panic, and parsing must be deterministic.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            snowbound_emulator::query::parse(text),
            snowbound_emulator::query::parse(text)
        );
    }
});
