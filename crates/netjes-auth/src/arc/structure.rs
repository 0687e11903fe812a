//! The ARC header fields' syntax, checked before the cryptography.
//!
//! mail-auth accepts ARC sets that RFC 8617 says are broken: sets with a
//! header field missing when there is no ARC-Message-Signature at all,
//! tag lists with empty or invalid tags ("s=x;;", "_=", "S=x") or duplicate
//! tags, a missing or rsa-sha1 a=, and an ARC-Message-Signature whose h=
//! covers ARC-Seal. These checks close that gap (found with the ValiMail suite).

/// Every ARC header field of the header block: (lower-case name, value).
fn arc_fields(raw: &[u8]) -> Vec<(String, String)> {
    crate::message::header_fields(raw)
        .into_iter()
        .map(|(n, v)| {
            (
                n.to_ascii_lowercase(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .filter(|(n, _)| n.starts_with("arc-"))
        .collect()
}

/// RFC 6376 §3.2 tag-list, strictly: tag names start with a letter and hold
/// letters, digits and '_'; no empty tag-specs but an optional final ';'; no
/// tag twice.
pub fn parse_tag_list(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut tags: Vec<(String, String)> = Vec::new();
    let specs: Vec<&str> = value.split(';').collect();
    for (i, spec) in specs.iter().enumerate() {
        let s = spec.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r' || c == '\n');
        if s.is_empty() {
            if i == specs.len() - 1 {
                continue;
            }
            return Err("an empty tag (two ';' in a row)".into());
        }
        let Some((name, val)) = s.split_once('=') else {
            return Err(format!("{s:?} is not a tag=value pair"));
        };
        let name = name.trim_end();
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("{name:?} is not a valid tag name"));
        }
        if tags.iter().any(|(n, _)| n == name) {
            return Err(format!("the tag {name}= appears twice"));
        }
        tags.push((name.to_string(), val.trim().to_string()));
    }
    Ok(tags)
}

/// What is structurally wrong with the message's ARC sets, if anything.
pub fn structural_problem(raw: &[u8]) -> Option<String> {
    let fields = arc_fields(raw);
    let count = |n: &str| fields.iter().filter(|(f, _)| f == n).count();
    let (seals, sigs, results) = (
        count("arc-seal"),
        count("arc-message-signature"),
        count("arc-authentication-results"),
    );
    if seals + sigs + results == 0 {
        return None;
    }
    if seals != sigs || sigs != results {
        return Some(format!(
            "incomplete ARC sets: {seals} ARC-Seal, {sigs} ARC-Message-Signature and {results} ARC-Authentication-Results"
        ));
    }
    for (name, value) in &fields {
        if name == "arc-authentication-results" {
            continue;
        }
        let tags = match parse_tag_list(value) {
            Ok(t) => t,
            Err(e) => return Some(format!("{name}: {e}")),
        };
        let get = |t: &str| tags.iter().find(|(n, _)| n == t).map(|(_, v)| v.as_str());
        let required: &[&str] = if name == "arc-seal" {
            &["i", "a", "b", "cv", "d", "s"]
        } else {
            &["i", "a", "b", "bh", "d", "h", "s"]
        };
        if let Some(missing) = required.iter().find(|t| get(t).is_none()) {
            return Some(format!("{name}: the required tag {missing}= is missing"));
        }
        match get("a") {
            Some("rsa-sha256") | Some("ed25519-sha256") => {}
            Some(a) => {
                return Some(format!(
                    "{name}: a={a} is not allowed (RFC 8617 §4.1, RFC 8301)"
                ))
            }
            None => unreachable!(),
        }
        if name == "arc-message-signature" {
            let h = get("h").unwrap_or("");
            if h.split(':')
                .any(|x| x.trim().eq_ignore_ascii_case("arc-seal"))
            {
                return Some(
                    "arc-message-signature: h= covers ARC-Seal, which RFC 8617 §4.1.2 forbids"
                        .into(),
                );
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lists() {
        assert!(parse_tag_list("a=1; b=2;").is_ok());
        assert!(parse_tag_list("a=1;; b=2").is_err());
        assert!(parse_tag_list("a=1; _=2").is_err());
        assert!(parse_tag_list("a=1; a=2").is_err());
        assert_eq!(parse_tag_list("S=x").unwrap()[0].0, "S");
    }
}
