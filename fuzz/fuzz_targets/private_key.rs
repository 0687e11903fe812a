//! PEM private keys as users hand them over.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = netjes_auth::dkim::PrivateKey::from_pem(s, Some(b"pw"));
    }
});
