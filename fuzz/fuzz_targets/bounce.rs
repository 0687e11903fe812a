//! Returned messages: the RFC 3464 status part and the classifier (ARF,
//! JMRP, plain-text bounces); and Postfix log lines for delivery events. Whatever they hold, a reading comes back and
//! every bounce it names has a class.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = netjes_bounce::dsn::parse(data);
    let _ = netjes_bounce::classify::classify(data);
    let mut t = netjes_bounce::events::Tracker::default();
    for line in String::from_utf8_lossy(data).lines() {
        let _ = t.feed(line);
    }
});
