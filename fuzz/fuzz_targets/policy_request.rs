//! Policy requests as they come off the socket, line by line; blocklist
//! site specifications; and whole configuration files.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut b = netjes_policy::protocol::RequestBuilder::default();
    for line in data.split(|c| *c == b'\n') {
        match b.line(line) {
            Ok(Some(r)) => {
                let _ = (r.client_ip(), r.is_policy_request(), r.instance());
            }
            Ok(None) => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(data);
    let _ = netjes_policy::dnsbl::DnsblSite::parse(&text);
    let _ = netjes_policy::Config::parse(&text);
    let _ = netjes_policy::server::ListenAddr::parse(&text);
});
