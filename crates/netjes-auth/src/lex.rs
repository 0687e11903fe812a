//! The lexical pieces of RFC 5322 §3.2 that header parsers share: comments
//! (nested, with quoted pairs), folding white space, quoted strings and
//! domain literals. Used by the From reading (dmarc::author) and the
//! Authentication-Results reading (authres).

/// Past a comment that starts at `i` (a '('), nested comments and quoted
/// pairs included; None when it is not closed.
pub(crate) fn skip_comment(b: &[u8], mut i: usize) -> Option<usize> {
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Past white space, folding and comments (CFWS) from `i`; None when a
/// comment is not closed.
pub(crate) fn skip_cfws(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match b.get(i) {
            Some(b' ' | b'\t' | b'\r' | b'\n') => i += 1,
            Some(b'(') => i = skip_comment(b, i)?,
            _ => return Some(i),
        }
    }
}

/// A quoted string (`close` '"') or domain literal (`close` ']') whose
/// opening octet is at `start`: its content, quoted pairs resolved and
/// folding removed, and the position after it. None when it is not closed,
/// or when a domain literal holds a bracket.
pub(crate) fn quoted(b: &[u8], start: usize, close: u8) -> Option<(String, usize)> {
    let mut out = Vec::new();
    let mut i = start + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if i + 1 < b.len() => {
                out.push(b[i + 1]);
                i += 2;
                continue;
            }
            b'\r' | b'\n' => {}
            c if c == close => return Some((String::from_utf8_lossy(&out).into_owned(), i + 1)),
            b'[' | b']' if close == b']' => return None,
            c => out.push(c),
        }
        i += 1;
    }
    None
}
