//! spamd's REPORT answers, which come from the network.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = netjes_analyze::spamd::parse_answer(&String::from_utf8_lossy(data));
});
