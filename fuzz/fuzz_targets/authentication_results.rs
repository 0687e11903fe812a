//! The Authentication-Results consolidation for ARC sealing.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = netjes_auth::arc::seal::consolidate_results(data, "mx.example");
});
