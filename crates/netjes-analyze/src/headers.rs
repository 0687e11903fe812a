//! The header block, read once for every check that needs raw fields.

/// The header fields as (name, raw value) pairs, unfolded: continuation
/// lines are joined without their line break, as RFC 5322 §2.2.3 unfolds.
pub fn fields(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = Vec::new();
    for line in raw.split(|b| *b == b'\n') {
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        if l.is_empty() {
            break;
        }
        if l[0] == b' ' || l[0] == b'\t' {
            if let Some((_, v)) = out.last_mut() {
                v.extend_from_slice(l);
            }
            continue;
        }
        if let Some(c) = l.iter().position(|b| *b == b':') {
            out.push((String::from_utf8_lossy(&l[..c]).trim().to_string(), l[c + 1..].to_vec()));
        }
    }
    out
}
