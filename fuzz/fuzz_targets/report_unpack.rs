//! gzip and zip unpacking: the cap holds whatever the input claims.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = netjes_reports::Limits { max_report_bytes: 1 << 20, ..Default::default() };
    if let Ok(docs) = netjes_reports::unpack::documents("x", data, &limits) {
        assert!(docs.iter().all(|d| d.bytes.len() as u64 <= limits.max_report_bytes));
    }
});
