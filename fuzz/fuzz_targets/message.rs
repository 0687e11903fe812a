//! Whole messages: limits, parsing, From domains, ARC structure.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(m) = netjes_auth::message::parse(data) {
        let _ = netjes_auth::message::from_domains(&m);
    }
});
