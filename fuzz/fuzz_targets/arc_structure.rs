//! ARC header fields' tag lists and set structure.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = netjes_auth::arc::structure::structural_problem(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = netjes_auth::arc::structure::parse_tag_list(s);
    }
});
