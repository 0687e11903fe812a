//! RFC 1035 zone files given with `check --zone`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = netjes_dns::master::parse_master_file(s, "example.com");
    }
});
