//! Received chains, the envelope read from them, and the form checks.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = netjes_analyze::received::hops(data);
    let _ = netjes_analyze::received::envelope_from_headers(data);
    let _ = netjes_analyze::format::check_format(data, 1_795_478_400);
    let _ = netjes_analyze::bulk::check_unsubscribe(data, None);
});
