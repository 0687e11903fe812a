//! DKIM key records (RFC 6376 §3.6.1) as DNS could return them.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = netjes_auth::dkim::parse_key_record(data);
});
