//! DMARC aggregate report XML: never a panic, and what is accepted adds up.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(r) = netjes_reports::aggregate::parse(data, &netjes_reports::Limits::default()) {
        let _ = r.messages();
        let _ = netjes_reports::sources::rows_of(&r);
    }
});
