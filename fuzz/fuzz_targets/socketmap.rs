//! Postfix socketmap frames: every request parsed from the front of the
//! input, as the server reads them, never past what is there.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((_, used))) = netjes_tlspolicy::socketmap::parse(rest) {
        assert!(used > 0 && used <= rest.len());
        rest = &rest[used..];
    }
});
