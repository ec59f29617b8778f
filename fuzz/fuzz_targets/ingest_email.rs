#![no_main]
//! The email parser reads whatever a client sends after SMTP DATA: any bytes must give an
//! alert or a refusal, never a panic.

use libfuzzer_sys::fuzz_target;
use snowbound_core::ingest::email::{parse, EmailSettings};
use snowbound_fuzz::source;

fuzz_target!(|data: &[u8]| {
    if let Err(error) = parse(data, &source(), &EmailSettings::default()) {
        assert!((400..500).contains(&error.status()));
    }
});
