//! SPF records as DNS could return them: any bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(r) = netjes_auth::spf::parse_record(data) {
        assert_eq!(r.terms.len(), r.spf.directives.len());
    }
});
