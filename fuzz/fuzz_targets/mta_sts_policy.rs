//! MTA-STS policy files as a web server returns them.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(p) = netjes_check::mta_sts::parse_policy(&String::from_utf8_lossy(data)) {
        for m in &p.mx {
            let _ = netjes_check::mta_sts::mx_matches(m, "mail.example.com");
        }
    }
});
