//! TLS report JSON (RFC 8460).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = netjes_reports::tls::parse(data);
});
