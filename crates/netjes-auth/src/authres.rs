//! Reading an Authentication-Results field that someone else wrote
//! (RFC 8601 §2.2), far enough to know whose it claims to be.
//!
//! A receiver deletes every field that claims its own authserv-id
//! (RFC 8601 §5, CVE-2019-20790): only it could have written one, so one
//! that arrives from outside is a forgery that a mail client might believe.
//! The claim is found by the grammar, not by splitting on a space: the id
//! may stand after a comment (`(x) mx.example;`), be folded onto the next
//! line, or be a quoted-string (`"mx.example"`). A parser that missed
//! these let the forgery through.

/// The authserv-id an Authentication-Results value claims, unquoted, or
/// None when the value does not start with one.
///
/// `authres-payload = [CFWS] authserv-id [CFWS authres-version] ...` and
/// `authserv-id = value` (RFC 2045: token / quoted-string).
pub fn authserv_id(value: &str) -> Option<String> {
    let b = value.as_bytes();
    let i = crate::lex::skip_cfws(b, 0)?;
    if b.get(i) == Some(&b'"') {
        return crate::lex::quoted(b, i, b'"').map(|(id, _)| id);
    }
    let end = b[i..].iter().position(|c| !is_token(*c)).map_or(b.len(), |n| i + n);
    (end > i).then(|| value[i..end].to_string())
}

/// RFC 2045 token characters: any CHAR but space, CTLs and tspecials.
fn is_token(c: u8) -> bool {
    c > b' ' && c < 0x7f && !b"()<>@,;:\\\"/[]?=".contains(&c)
}

/// Whether an Authentication-Results value claims `ours` (case-insensitive,
/// a trailing dot ignored), so that it must be deleted.
pub fn claims(value: &str, ours: &str) -> bool {
    let norm = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
    match authserv_id(value) {
        Some(id) => norm(&id) == norm(ours),
        // A value whose id cannot be read (an unclosed comment, say)
        // might be read as ours by a lenient client: it goes too.
        None => value.to_ascii_lowercase().contains(&norm(ours)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forms_rfc_8601_allows() {
        for v in [
            " mx.example; dkim=pass",
            "mx.example;dkim=pass",
            " MX.Example; spf=pass",
            " mx.example 1; none",
            " mx.example; none",
            " (comment) mx.example; dmarc=pass",
            " (nested (comment)) mx.example; dmarc=pass",
            "\n\tmx.example\n\t; dmarc=pass",
            " \"mx.example\"; dmarc=pass",
            " \"mx.\\example\"; dmarc=pass",
            " mx.example.; dmarc=pass",
            " mx.example(c); dmarc=pass",
            " mx.example",
        ] {
            assert!(claims(v, "mx.example"), "{v:?}: {:?}", authserv_id(v));
        }
        for v in [
            " other.example; dkim=pass mx.example",
            " mx.example.evil; dmarc=pass",
            " (mx.example) other.example; dmarc=pass",
        ] {
            assert!(!claims(v, "mx.example"), "{v:?}");
        }
        assert_eq!(authserv_id(" (open mx.example; x"), None);
        assert!(claims(" (open mx.example; x", "mx.example"));
    }
}
