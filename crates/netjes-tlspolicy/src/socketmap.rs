//! Postfix's socketmap protocol (socketmap_table(5)): each request and
//! each reply is a netstring (`LEN:DATA,`); a request's data is
//! `NAME KEY`, a reply's `OK value`, `NOTFOUND `, `TEMP reason`,
//! `TIMEOUT reason` or `PERM reason`. Free of IO.

/// The longest netstring taken, as Postfix's own socketmap limit.
pub const MAX_NETSTRING: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok(String),
    NotFound,
    Temp(String),
    Perm(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a netstring: {0}")]
    Syntax(&'static str),
    #[error("a netstring of {0} octets is over the limit")]
    TooLong(usize),
}

/// One request from the front of `buf`: `Ok(None)` when more octets are
/// needed, else the request and how many octets it took. The length is
/// read by the netstring grammar (digits, no sign, no leading zero but
/// "0"), so no overflow and no unbounded wait.
pub fn parse(buf: &[u8]) -> Result<Option<(Request, usize)>, FrameError> {
    let Some(colon) = buf.iter().take(7).position(|b| *b == b':') else {
        if buf.len() >= 7 || buf.iter().any(|b| !b.is_ascii_digit()) {
            return Err(FrameError::Syntax("the length is not 1 to 6 digits and a colon"));
        }
        return Ok(None);
    };
    let digits = &buf[..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) || (digits.len() > 1 && digits[0] == b'0') {
        return Err(FrameError::Syntax("the length is not a plain number"));
    }
    let len: usize = std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or(FrameError::Syntax("the length"))?;
    if len > MAX_NETSTRING {
        return Err(FrameError::TooLong(len));
    }
    let end = colon + 1 + len;
    if buf.len() < end + 1 {
        return Ok(None);
    }
    if buf[end] != b',' {
        return Err(FrameError::Syntax("the data does not end with a comma"));
    }
    let data = std::str::from_utf8(&buf[colon + 1..end]).map_err(|_| FrameError::Syntax("the data is not UTF-8"))?;
    let (name, key) = data.split_once(' ').ok_or(FrameError::Syntax("no space between the name and the key"))?;
    Ok(Some((Request { name: name.to_string(), key: key.to_string() }, end + 1)))
}

/// A reply as a netstring.
pub fn encode(r: &Reply) -> Vec<u8> {
    let data = match r {
        Reply::Ok(v) => format!("OK {v}"),
        Reply::NotFound => "NOTFOUND ".to_string(),
        Reply::Temp(why) => format!("TEMP {why}"),
        Reply::Perm(why) => format!("PERM {why}"),
    };
    format!("{}:{data},", data.len()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netstrings_by_the_grammar() {
        let (r, n) = parse(b"19:postfix example.com,rest").unwrap().unwrap();
        assert_eq!((r.name.as_str(), r.key.as_str(), n), ("postfix", "example.com", 23));
        assert_eq!(parse(b"19:postfix exa").unwrap(), None, "more to come");
        assert_eq!(parse(b"19").unwrap(), None);
        for bad in [&b"-1:x y,"[..], b"01:x,", b"19:postfix example.comX", b":x y,", b"1234567:", b"abc"] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse(b"999999:").unwrap_err(), FrameError::TooLong(999_999));
        assert_eq!(parse(b"7:postfix,").unwrap_err(), FrameError::Syntax("no space between the name and the key"));
        assert_eq!(encode(&Reply::NotFound), b"9:NOTFOUND ,");
        assert_eq!(encode(&Reply::Ok("secure".into())), b"9:OK secure,");
    }
}
