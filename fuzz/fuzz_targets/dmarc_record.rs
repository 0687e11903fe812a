//! DMARC records as DNS could return them.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = netjes_auth::dmarc::parse_dmarc_record(data);
});
