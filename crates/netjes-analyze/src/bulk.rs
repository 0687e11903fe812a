//! The rules Gmail, Yahoo and Outlook set for bulk senders in 2024–2025:
//! one-click unsubscribe (RFC 8058), signed; the rest (aligned DKIM or SPF,
//! DMARC published, TLS) is judged from the verdict and the Received chain.

use crate::finding::Finding;
use netjes_auth::message::header_fields as fields;

fn header(fields: &[(String, Vec<u8>)], name: &str) -> Option<String> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
}

/// `signed`: the header names (h=) of the passing, aligned DKIM signature, if any.
pub fn check_unsubscribe(raw: &[u8], signed: Option<&[String]>) -> Vec<Finding> {
    check_unsubscribe_of(&fields(raw), signed)
}

/// The same, over the header fields the caller already has.
pub fn check_unsubscribe_of(
    fields: &[(String, Vec<u8>)],
    signed: Option<&[String]>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let Some(lu) = header(fields, "List-Unsubscribe") else {
        out.push(
            Finding::new("bulk.no-list-unsubscribe", "no List-Unsubscribe: Gmail and Yahoo require it from bulk senders, and people who cannot unsubscribe report spam")
                .fix("List-Unsubscribe: <https://example.com/unsubscribe?id=...>, <mailto:unsubscribe@example.com>"),
        );
        return out;
    };
    let uris: Vec<String> = lu
        .split(',')
        .map(|u| {
            u.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .collect();
    let https = uris
        .iter()
        .any(|u| u.to_ascii_lowercase().starts_with("https://"));
    let mailto = uris
        .iter()
        .any(|u| u.to_ascii_lowercase().starts_with("mailto:"));
    if !https && !mailto {
        out.push(Finding::new("bulk.list-unsubscribe-uri", format!("List-Unsubscribe holds no https: or mailto: URI: {lu}")).fix("List-Unsubscribe: <https://example.com/unsubscribe?id=...>, <mailto:unsubscribe@example.com>"));
    }
    let post = header(fields, "List-Unsubscribe-Post");
    match post.as_deref() {
        Some(p) if p.replace(' ', "").eq_ignore_ascii_case("List-Unsubscribe=One-Click") => {
            if !https {
                out.push(Finding::new("bulk.one-click-without-https", "List-Unsubscribe-Post needs an https: URI in List-Unsubscribe to post to (RFC 8058 §3.1)").fix("add <https://your-domain/unsubscribe?id=...> to List-Unsubscribe, answering a POST with the unsubscription"));
            }
        }
        Some(p) => out.push(Finding::new("bulk.bad-unsubscribe-post", format!("List-Unsubscribe-Post must be exactly \"List-Unsubscribe=One-Click\", not {p:?}")).fix("List-Unsubscribe-Post: List-Unsubscribe=One-Click")),
        None => out.push(
            Finding::new("bulk.no-one-click", "no List-Unsubscribe-Post: Gmail and Yahoo want one-click unsubscribe (RFC 8058)")
                .fix("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        ),
    }
    // RFC 8058 §4: both fields must be covered by a valid DKIM signature.
    if let Some(h) = signed {
        for name in ["List-Unsubscribe", "List-Unsubscribe-Post"] {
            let present = name == "List-Unsubscribe" || post.is_some();
            if present && !h.iter().any(|x| x.eq_ignore_ascii_case(name)) {
                out.push(
                    Finding::new(
                        "bulk.unsigned-unsubscribe",
                        format!("{name} is not covered by the DKIM signature (RFC 8058 §4)"),
                    )
                    .fix(format!("add {name} to the signed headers (h=)")),
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(raw: &[u8], signed: Option<&[String]>) -> Vec<&'static str> {
        check_unsubscribe(raw, signed)
            .into_iter()
            .map(|f| f.id)
            .collect()
    }

    #[test]
    fn one_click_rules() {
        let good = b"From: a@example.com\r\nList-Unsubscribe: <https://example.com/u?x=1>,\r\n <mailto:u@example.com>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nx";
        let signed: Vec<String> = vec![
            "From".into(),
            "List-Unsubscribe".into(),
            "List-Unsubscribe-Post".into(),
        ];
        assert!(ids(good, Some(&signed)).is_empty());
        assert_eq!(
            ids(good, Some(&signed[..1])),
            vec!["bulk.unsigned-unsubscribe", "bulk.unsigned-unsubscribe"]
        );
        assert_eq!(
            ids(b"From: a@example.com\r\n\r\nx", None),
            vec!["bulk.no-list-unsubscribe"]
        );
        assert_eq!(
            ids(b"List-Unsubscribe: <mailto:u@example.com>\r\n\r\nx", None),
            vec!["bulk.no-one-click"]
        );
        assert_eq!(
            ids(b"List-Unsubscribe: <mailto:u@example.com>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nx", None),
            vec!["bulk.one-click-without-https"]
        );
        assert_eq!(
            ids(
                b"List-Unsubscribe: <http://x>\r\nList-Unsubscribe-Post: yes\r\n\r\nx",
                None
            ),
            vec!["bulk.list-unsubscribe-uri", "bulk.bad-unsubscribe-post"]
        );
    }
}
