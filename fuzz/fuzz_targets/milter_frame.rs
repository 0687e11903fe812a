//! Milter frames as they come off the socket: the length prefix, then
//! command and reply decoding.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let _ = netjes_milter::protocol::frame_len([data[0], data[1], data[2], data[3]]);
    }
    if let Ok(c) = netjes_milter::protocol::Command::decode(data) {
        // What decodes must encode back to the same command.
        let f = netjes_milter::protocol::encode_command(&c);
        let again = netjes_milter::protocol::Command::decode(&f[4..]);
        assert!(again.is_ok());
    }
    let _ = netjes_milter::protocol::Response::decode(data);
});
