//! Failure reports (ARF and plain text) and report mails.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = netjes_reports::message::reports_in(data, &netjes_reports::Limits::default());
});
