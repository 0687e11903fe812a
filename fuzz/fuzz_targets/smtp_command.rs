//! The test inbox's SMTP command lines and recipient rule, and serve's
//! configuration files. Whatever the input, a recipient that passes is a
//! plain id of ours.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        if let netjes_serve::smtp::command::Command::Rcpt(to) = netjes_serve::smtp::command::parse(line) {
            if let Ok(id) = netjes_serve::smtp::command::test_id(&to, "test.example") {
                assert!(id.bytes().all(|c| c.is_ascii_alphanumeric()));
                assert!(to.to_ascii_lowercase().ends_with("@test.example") || to.to_ascii_lowercase().ends_with("@test.example."));
            }
        }
    }
    let _ = netjes_serve::config::Config::parse(&text);
});
