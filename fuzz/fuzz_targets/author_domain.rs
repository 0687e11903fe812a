//! The RFC 5322.From author reading (netjes_auth::dmarc::author), checked
//! against a second reading: every author domain it returns is one the
//! From field really contains, in canonical form.
#![no_main]
use netjes_auth::dmarc::author::{author_domain, authors_of, field_holds_domain, mta_header_fields};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(authors) = authors_of(data) else { return };
    let fields = mta_header_fields(data);
    let from = fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(b"From"))
        .map(|(_, v)| v.clone())
        .expect("authors came from a From field");
    for d in &authors.domains {
        assert!(field_holds_domain(&from, d), "{d} is not in the From field");
        assert_eq!(author_domain(d).as_deref(), Ok(d.as_str()));
    }
});
