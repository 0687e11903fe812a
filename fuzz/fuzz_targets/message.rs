//! Whole messages: limits, parsing, the author domains.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if netjes_auth::message::parse(data).is_ok() {
        let _ = netjes_auth::dmarc::authors_of(data);
    }
});
