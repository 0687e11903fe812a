//! Zone fixture text.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = netjes_dns::zone::Zone::parse(s);
    }
});
