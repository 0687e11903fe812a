//! The HTML scan, URLs in text, link targets and the domain a link's text
//! shows; then the whole content check on the input read as a message.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let facts = netjes_analyze::html::scan(&text);
    for l in &facts.links {
        let _ = netjes_analyze::links::target(&l.href);
        let _ = netjes_analyze::links::shown_domain(&l.text);
    }
    for u in netjes_analyze::html::text_urls(&text) {
        let _ = netjes_analyze::links::target(&u);
    }
    if let Some(m) = mail_parser::MessageParser::default().parse(data) {
        let _ = netjes_analyze::content::check_content(&m, &["example.com".to_string()]);
    }
});
