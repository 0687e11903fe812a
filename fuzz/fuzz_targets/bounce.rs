//! Returned messages: the RFC 3464 status part and the classifier (ARF,
//! JMRP, plain-text bounces). Whatever they hold, a reading comes back and
//! every bounce it names has a class.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = netjes_bounce::dsn::parse(data);
    let _ = netjes_bounce::classify::classify(data);
});
