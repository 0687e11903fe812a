//! The Postfix SMTP access policy delegation protocol (SMTPD_POLICY_README):
//! "name=value" lines ending with an empty line; the answer is
//! "action=..." and an empty line. Any number of requests per connection.
//!
//! Parsing is free of IO: the server feeds it lines.

use std::collections::HashMap;
use std::net::IpAddr;

/// Postfix sends about 30 attributes; a request far larger is not Postfix.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// One attribute line; Postfix's longest (ccert_subject, sasl_username)
/// stay well under this.
pub const MAX_LINE_BYTES: usize = 2048;
pub const MAX_ATTRIBUTES: usize = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("request over {MAX_REQUEST_BYTES} octets")]
    TooLarge,
    #[error("attribute line over {MAX_LINE_BYTES} octets")]
    LineTooLong,
    #[error("more than {MAX_ATTRIBUTES} attributes")]
    TooManyAttributes,
    #[error("line without '=': {0:?}")]
    NotAnAttribute(String),
    #[error("not UTF-8")]
    NotUtf8,
}

/// One request, as attribute lines are read.
#[derive(Debug, Default)]
pub struct RequestBuilder {
    attrs: HashMap<String, String>,
    bytes: usize,
}

impl RequestBuilder {
    /// Feeds one line without its line end. Returns the request when the
    /// line is the empty line that ends it.
    pub fn line(&mut self, line: &[u8]) -> Result<Option<Request>, ProtocolError> {
        self.bytes += line.len() + 1;
        if self.bytes > MAX_REQUEST_BYTES {
            return Err(ProtocolError::TooLarge);
        }
        if line.len() > MAX_LINE_BYTES {
            return Err(ProtocolError::LineTooLong);
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            let attrs = std::mem::take(&mut self.attrs);
            self.bytes = 0;
            return Ok(Some(Request::from_attrs(attrs)));
        }
        let text = std::str::from_utf8(line).map_err(|_| ProtocolError::NotUtf8)?;
        let (k, v) = text
            .split_once('=')
            .ok_or_else(|| ProtocolError::NotAnAttribute(text.chars().take(60).collect()))?;
        if self.attrs.len() >= MAX_ATTRIBUTES && !self.attrs.contains_key(k) {
            return Err(ProtocolError::TooManyAttributes);
        }
        self.attrs.insert(k.to_string(), v.to_string());
        Ok(None)
    }

    /// Whether a request is half read (for a clean end of connection).
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }
}

/// The attributes the checks use; unknown ones are kept but ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub attrs: HashMap<String, String>,
}

impl Request {
    pub fn from_attrs(attrs: HashMap<String, String>) -> Request {
        Request { attrs }
    }

    pub fn get(&self, k: &str) -> &str {
        self.attrs.get(k).map(String::as_str).unwrap_or("")
    }

    /// "smtpd_access_policy" is the only request type Postfix defines.
    pub fn is_policy_request(&self) -> bool {
        self.get("request") == "smtpd_access_policy"
    }

    /// CONNECT, EHLO, HELO, MAIL, RCPT, DATA, END-OF-MESSAGE, VRFY, ETRN.
    pub fn state(&self) -> &str {
        self.get("protocol_state")
    }

    pub fn client_ip(&self) -> Option<IpAddr> {
        self.get("client_address").parse().ok()
    }

    pub fn client_name(&self) -> &str {
        self.get("client_name")
    }

    pub fn helo(&self) -> &str {
        self.get("helo_name")
    }

    pub fn sender(&self) -> &str {
        self.get("sender")
    }

    pub fn recipient(&self) -> &str {
        self.get("recipient")
    }

    /// Postfix's id of the message being received: the same for every
    /// recipient of one message.
    pub fn instance(&self) -> &str {
        self.get("instance")
    }

    pub fn sasl_username(&self) -> &str {
        self.get("sasl_username")
    }
}

/// An answer line, escaped: a newline in it would end the reply early.
pub fn reply(action: &str) -> String {
    let clean: String = action
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("action={clean}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_requests_and_refuses_junk() {
        let mut b = RequestBuilder::default();
        assert!(b.line(b"request=smtpd_access_policy").unwrap().is_none());
        b.line(b"protocol_state=RCPT").unwrap();
        b.line(b"client_address=192.0.2.1").unwrap();
        b.line(b"sender=a=b@example.com").unwrap();
        b.line(b"unknown_future_attribute=x").unwrap();
        let r = b.line(b"").unwrap().unwrap();
        assert!(r.is_policy_request());
        assert_eq!(r.sender(), "a=b@example.com");
        assert_eq!(r.client_ip(), Some("192.0.2.1".parse().unwrap()));
        assert!(b.is_empty());
        assert_eq!(
            b.line(b"no equals sign"),
            Err(ProtocolError::NotAnAttribute("no equals sign".into()))
        );
        let mut b = RequestBuilder::default();
        assert_eq!(b.line(&vec![b'a'; 3000]), Err(ProtocolError::LineTooLong));
        let mut b = RequestBuilder::default();
        let mut err = None;
        for i in 0..200 {
            if let Err(e) = b.line(format!("k{i}=v").as_bytes()) {
                err = Some(e);
                break;
            }
        }
        assert_eq!(err, Some(ProtocolError::TooManyAttributes));
        assert_eq!(reply("DUNNO\nx"), "action=DUNNO x\n\n");
    }
}
