//! The policy store's journal as a crash or a power loss may leave it:
//! decoding stops at damage and never panics, and what it accepts encodes
//! back to the octets it came from.
#![no_main]
use netjes_policy::store::journal::{decode_all, encode};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (changes, damage) = decode_all(data).expect("reading a slice cannot fail");
    let mut again = Vec::new();
    for c in &changes {
        encode(c, &mut again);
    }
    let good = damage.map_or(data.len(), |at| at as usize);
    assert_eq!(&again[..], &data[..good]);
});
