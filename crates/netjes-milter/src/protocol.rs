//! The milter wire protocol, version 6, as Postfix and Sendmail speak it
//! (libmilter's mfdef.h; Postfix's MILTER_README): every packet is a
//! 4-octet big-endian length, one command octet, and data. This module
//! only encodes and decodes; it does no IO.

/// The protocol version netjes speaks.
pub const VERSION: u32 = 6;
/// Postfix's largest packet is a body chunk (65535 octets) or a header;
/// this is far above both and bounds what one frame can cost.
pub const MAX_FRAME: usize = 1024 * 1024;

// Actions the filter may take (SMFIF_*).
pub const SMFIF_ADDHDRS: u32 = 0x01;
pub const SMFIF_CHGBODY: u32 = 0x02;
pub const SMFIF_ADDRCPT: u32 = 0x04;
pub const SMFIF_DELRCPT: u32 = 0x08;
pub const SMFIF_CHGHDRS: u32 = 0x10;
pub const SMFIF_QUARANTINE: u32 = 0x20;

// Protocol steps the filter can do without (SMFIP_*).
pub const SMFIP_NOCONNECT: u32 = 0x01;
pub const SMFIP_NOHELO: u32 = 0x02;
pub const SMFIP_NOMAIL: u32 = 0x04;
pub const SMFIP_NORCPT: u32 = 0x08;
pub const SMFIP_NOBODY: u32 = 0x10;
pub const SMFIP_NOHDRS: u32 = 0x20;
pub const SMFIP_NOEOH: u32 = 0x40;
pub const SMFIP_NR_HDR: u32 = 0x80;
pub const SMFIP_NOUNKNOWN: u32 = 0x100;
pub const SMFIP_NODATA: u32 = 0x200;
pub const SMFIP_SKIP: u32 = 0x400;
pub const SMFIP_RCPT_REJ: u32 = 0x800;
pub const SMFIP_NR_CONN: u32 = 0x1000;
pub const SMFIP_NR_HELO: u32 = 0x2000;
pub const SMFIP_NR_MAIL: u32 = 0x4000;
pub const SMFIP_NR_RCPT: u32 = 0x8000;
pub const SMFIP_NR_DATA: u32 = 0x10000;
pub const SMFIP_NR_UNKN: u32 = 0x20000;
pub const SMFIP_NR_EOH: u32 = 0x40000;
pub const SMFIP_NR_BODY: u32 = 0x80000;
/// Header values keep their leading space: DKIM's simple header
/// canonicalization needs the field exactly as it came.
pub const SMFIP_HDR_LEADSPC: u32 = 0x100000;

/// The steps whose replies netjes declines (SMFIP_NR_*, milter protocol 6):
/// it decides at the end of the message only, so the MTA need not wait for
/// a "continue" after every command. Postfix honours them (since 2.6);
/// they save a dozen round trips per message.
pub const NO_REPLIES: u32 = SMFIP_NR_CONN
    | SMFIP_NR_HELO
    | SMFIP_NR_MAIL
    | SMFIP_NR_RCPT
    | SMFIP_NR_DATA
    | SMFIP_NR_UNKN
    | SMFIP_NR_EOH
    | SMFIP_NR_BODY
    | SMFIP_NR_HDR;

/// Under the negotiated protocol flags: is the command sent at all, and is
/// it answered? (Macros, abort and quit are sent and never answered.)
pub fn exchange(c: &Command, negotiated: u32) -> (bool, bool) {
    let (no, nr) = match c {
        Command::Connect { .. } => (SMFIP_NOCONNECT, SMFIP_NR_CONN),
        Command::Helo(_) => (SMFIP_NOHELO, SMFIP_NR_HELO),
        Command::Mail(_) => (SMFIP_NOMAIL, SMFIP_NR_MAIL),
        Command::Rcpt(_) => (SMFIP_NORCPT, SMFIP_NR_RCPT),
        Command::Data => (SMFIP_NODATA, SMFIP_NR_DATA),
        Command::Header { .. } => (SMFIP_NOHDRS, SMFIP_NR_HDR),
        Command::EndOfHeaders => (SMFIP_NOEOH, SMFIP_NR_EOH),
        Command::Body(_) => (SMFIP_NOBODY, SMFIP_NR_BODY),
        Command::Unknown(_) => (SMFIP_NOUNKNOWN, SMFIP_NR_UNKN),
        Command::Macros { .. } | Command::Abort | Command::Quit | Command::QuitNewConnection => {
            return (true, false)
        }
        Command::OptNeg { .. } | Command::EndOfMessage => (0, 0),
    };
    (negotiated & no == 0, negotiated & nr == 0)
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("frame of {0} octets, over the limit of {MAX_FRAME}")]
    TooLarge(usize),
    #[error("empty frame")]
    Empty,
    #[error("unknown command {0:?}")]
    UnknownCommand(char),
    #[error("malformed {0} packet")]
    Malformed(&'static str),
}

/// Connection families in SMFIC_CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Family {
    Unknown,
    Unix,
    Inet,
    Inet6,
}

/// A command from the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// 'O': version, actions offered, protocol steps offered.
    OptNeg {
        version: u32,
        actions: u32,
        protocol: u32,
    },
    /// 'D': macros for the command that follows.
    Macros {
        stage: u8,
        pairs: Vec<(String, String)>,
    },
    /// 'C'
    Connect {
        hostname: String,
        family: Family,
        port: u16,
        address: String,
    },
    /// 'H'
    Helo(String),
    /// 'M': the sender and ESMTP arguments.
    Mail(Vec<String>),
    /// 'R': the recipient and ESMTP arguments.
    Rcpt(Vec<String>),
    /// 'T'
    Data,
    /// 'L'
    Header { name: String, value: Vec<u8> },
    /// 'N'
    EndOfHeaders,
    /// 'B'
    Body(Vec<u8>),
    /// 'E'
    EndOfMessage,
    /// 'A': the message is aborted; the connection stays.
    Abort,
    /// 'Q'
    Quit,
    /// 'K': quit this connection's message state, a new connection follows.
    QuitNewConnection,
    /// 'U'
    Unknown(Vec<u8>),
}

/// Splits NUL-terminated strings; the last may lack its NUL.
fn cstrings(data: &[u8]) -> Vec<String> {
    let d = data.strip_suffix(&[0]).unwrap_or(data);
    if d.is_empty() {
        return vec![];
    }
    d.split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn u32_at(d: &[u8], i: usize, what: &'static str) -> Result<u32, ProtocolError> {
    d.get(i..i + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(ProtocolError::Malformed(what))
}

impl Command {
    /// Decodes one frame's payload (the command octet and its data).
    pub fn decode(frame: &[u8]) -> Result<Command, ProtocolError> {
        let (&cmd, d) = frame.split_first().ok_or(ProtocolError::Empty)?;
        Ok(match cmd {
            b'O' => Command::OptNeg {
                version: u32_at(d, 0, "optneg")?,
                actions: u32_at(d, 4, "optneg")?,
                protocol: u32_at(d, 8, "optneg")?,
            },
            b'D' => {
                let (&stage, rest) = d.split_first().ok_or(ProtocolError::Malformed("macro"))?;
                let s = cstrings(rest);
                let pairs = s
                    .chunks(2)
                    .map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or_default()))
                    .collect();
                Command::Macros { stage, pairs }
            }
            b'C' => {
                let nul = d
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or(ProtocolError::Malformed("connect"))?;
                let hostname = String::from_utf8_lossy(&d[..nul]).into_owned();
                let rest = &d[nul + 1..];
                let (&fam, rest) = rest
                    .split_first()
                    .ok_or(ProtocolError::Malformed("connect"))?;
                let family = match fam {
                    b'4' => Family::Inet,
                    b'6' => Family::Inet6,
                    b'L' => Family::Unix,
                    _ => Family::Unknown,
                };
                let (port, address) = if family == Family::Unknown || rest.len() < 2 {
                    (0, String::new())
                } else {
                    (
                        u16::from_be_bytes([rest[0], rest[1]]),
                        cstrings(&rest[2..]).into_iter().next().unwrap_or_default(),
                    )
                };
                Command::Connect {
                    hostname,
                    family,
                    port,
                    address,
                }
            }
            b'H' => Command::Helo(cstrings(d).into_iter().next().unwrap_or_default()),
            b'M' => Command::Mail(cstrings(d)),
            b'R' => Command::Rcpt(cstrings(d)),
            b'T' => Command::Data,
            b'L' => {
                let nul = d
                    .iter()
                    .position(|b| *b == 0)
                    .ok_or(ProtocolError::Malformed("header"))?;
                let name = String::from_utf8_lossy(&d[..nul]).into_owned();
                let v = &d[nul + 1..];
                Command::Header {
                    name,
                    value: v.strip_suffix(&[0]).unwrap_or(v).to_vec(),
                }
            }
            b'N' => Command::EndOfHeaders,
            b'B' => Command::Body(d.to_vec()),
            b'E' => Command::EndOfMessage,
            b'A' => Command::Abort,
            b'Q' => Command::Quit,
            b'K' => Command::QuitNewConnection,
            b'U' => Command::Unknown(d.to_vec()),
            other => return Err(ProtocolError::UnknownCommand(other as char)),
        })
    }
}

/// A reply or a modification action to the MTA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// 'O'
    OptNeg {
        version: u32,
        actions: u32,
        protocol: u32,
    },
    /// 'c'
    Continue,
    /// 'a'
    Accept,
    /// 'r'
    Reject,
    /// 't'
    Tempfail,
    /// 'd'
    Discard,
    /// 'y': an SMTP reply, "550 5.7.1 text".
    ReplyCode(String),
    /// 'h'
    AddHeader { name: String, value: String },
    /// 'i': insert at a position (0: on top).
    InsertHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// 'm': change the index'th (1-based) field of that name; an empty
    /// value deletes it.
    ChangeHeader {
        index: u32,
        name: String,
        value: String,
    },
    /// 'q'
    Quarantine(String),
    /// 'p': still working, reset the MTA's timeout.
    Progress,
    /// 's': send no more body chunks (offered with SMFIP_SKIP).
    Skip,
}

impl Response {
    /// Whether this reply ends the MTA's wait for the command it answers;
    /// modifications and progress come before one that does.
    pub fn ends_command(&self) -> bool {
        matches!(
            self,
            Response::Continue
                | Response::Accept
                | Response::Reject
                | Response::Tempfail
                | Response::Discard
                | Response::ReplyCode(_)
                | Response::OptNeg { .. }
                | Response::Skip
        )
    }
}

fn frame(cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + data.len());
    out.extend_from_slice(&((data.len() + 1) as u32).to_be_bytes());
    out.push(cmd);
    out.extend_from_slice(data);
    out
}

/// Header text must not carry a NUL (it ends the string) or bare line ends.
fn clean(s: &str) -> Vec<u8> {
    s.bytes().filter(|b| *b != 0).collect()
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let nul = |parts: &[&str]| -> Vec<u8> {
            let mut v = Vec::new();
            for p in parts {
                v.extend(clean(p));
                v.push(0);
            }
            v
        };
        match self {
            Response::OptNeg {
                version,
                actions,
                protocol,
            } => {
                let mut d = Vec::with_capacity(12);
                d.extend_from_slice(&version.to_be_bytes());
                d.extend_from_slice(&actions.to_be_bytes());
                d.extend_from_slice(&protocol.to_be_bytes());
                frame(b'O', &d)
            }
            Response::Continue => frame(b'c', &[]),
            Response::Accept => frame(b'a', &[]),
            Response::Reject => frame(b'r', &[]),
            Response::Tempfail => frame(b't', &[]),
            Response::Discard => frame(b'd', &[]),
            Response::Progress => frame(b'p', &[]),
            Response::Skip => frame(b's', &[]),
            Response::ReplyCode(text) => frame(b'y', &nul(&[text])),
            Response::AddHeader { name, value } => frame(b'h', &nul(&[name, value])),
            Response::InsertHeader { index, name, value } => {
                let mut d = index.to_be_bytes().to_vec();
                d.extend(nul(&[name, value]));
                frame(b'i', &d)
            }
            Response::ChangeHeader { index, name, value } => {
                let mut d = index.to_be_bytes().to_vec();
                d.extend(nul(&[name, value]));
                frame(b'm', &d)
            }
            Response::Quarantine(reason) => frame(b'q', &nul(&[reason])),
        }
    }

    /// Decodes a reply, for milter clients (tests and benchmarks).
    pub fn decode(frame: &[u8]) -> Result<Response, ProtocolError> {
        let (&cmd, d) = frame.split_first().ok_or(ProtocolError::Empty)?;
        let s = cstrings;
        Ok(match cmd {
            b'O' => Response::OptNeg {
                version: u32_at(d, 0, "optneg")?,
                actions: u32_at(d, 4, "optneg")?,
                protocol: u32_at(d, 8, "optneg")?,
            },
            b'c' => Response::Continue,
            b'a' => Response::Accept,
            b'r' => Response::Reject,
            b't' => Response::Tempfail,
            b'd' => Response::Discard,
            b'p' => Response::Progress,
            b's' => Response::Skip,
            b'y' => Response::ReplyCode(s(d).into_iter().next().unwrap_or_default()),
            b'h' => {
                let v = s(d);
                Response::AddHeader {
                    name: v
                        .first()
                        .cloned()
                        .ok_or(ProtocolError::Malformed("addheader"))?,
                    value: v.get(1).cloned().unwrap_or_default(),
                }
            }
            b'i' | b'm' => {
                let index = u32_at(d, 0, "header change")?;
                let v = s(&d[4..]);
                let name = v
                    .first()
                    .cloned()
                    .ok_or(ProtocolError::Malformed("header change"))?;
                let value = v.get(1).cloned().unwrap_or_default();
                if cmd == b'i' {
                    Response::InsertHeader { index, name, value }
                } else {
                    Response::ChangeHeader { index, name, value }
                }
            }
            b'q' => Response::Quarantine(s(d).into_iter().next().unwrap_or_default()),
            other => return Err(ProtocolError::UnknownCommand(other as char)),
        })
    }
}

/// Encodes a command, for milter clients (tests and benchmarks).
pub fn encode_command(c: &Command) -> Vec<u8> {
    let nul = |parts: &[&str]| -> Vec<u8> {
        let mut v = Vec::new();
        for p in parts {
            v.extend_from_slice(p.as_bytes());
            v.push(0);
        }
        v
    };
    match c {
        Command::OptNeg {
            version,
            actions,
            protocol,
        } => {
            let mut d = version.to_be_bytes().to_vec();
            d.extend_from_slice(&actions.to_be_bytes());
            d.extend_from_slice(&protocol.to_be_bytes());
            frame(b'O', &d)
        }
        Command::Macros { stage, pairs } => {
            let mut d = vec![*stage];
            for (k, v) in pairs {
                d.extend(nul(&[k, v]));
            }
            frame(b'D', &d)
        }
        Command::Connect {
            hostname,
            family,
            port,
            address,
        } => {
            let mut d = nul(&[hostname]);
            d.push(match family {
                Family::Inet => b'4',
                Family::Inet6 => b'6',
                Family::Unix => b'L',
                Family::Unknown => b'U',
            });
            if *family != Family::Unknown {
                d.extend_from_slice(&port.to_be_bytes());
                d.extend(nul(&[address]));
            }
            frame(b'C', &d)
        }
        Command::Helo(h) => frame(b'H', &nul(&[h])),
        Command::Mail(a) => frame(
            b'M',
            &nul(&a.iter().map(String::as_str).collect::<Vec<_>>()),
        ),
        Command::Rcpt(a) => frame(
            b'R',
            &nul(&a.iter().map(String::as_str).collect::<Vec<_>>()),
        ),
        Command::Data => frame(b'T', &[]),
        Command::Header { name, value } => {
            let mut d = nul(&[name]);
            d.extend_from_slice(value);
            d.push(0);
            frame(b'L', &d)
        }
        Command::EndOfHeaders => frame(b'N', &[]),
        Command::Body(b) => frame(b'B', b),
        Command::EndOfMessage => frame(b'E', &[]),
        Command::Abort => frame(b'A', &[]),
        Command::Quit => frame(b'Q', &[]),
        Command::QuitNewConnection => frame(b'K', &[]),
        Command::Unknown(d) => frame(b'U', d),
    }
}

/// Reads a frame's length prefix: the payload length that follows.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, ProtocolError> {
    let n = u32::from_be_bytes(prefix) as usize;
    if n == 0 {
        return Err(ProtocolError::Empty);
    }
    if n > MAX_FRAME {
        return Err(ProtocolError::TooLarge(n));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(c: Command) {
        let f = encode_command(&c);
        let n = frame_len([f[0], f[1], f[2], f[3]]).unwrap();
        assert_eq!(n, f.len() - 4);
        assert_eq!(Command::decode(&f[4..]).unwrap(), c);
    }

    #[test]
    fn commands_round_trip() {
        roundtrip(Command::OptNeg {
            version: 6,
            actions: 0x1ff,
            protocol: 0x1fffff,
        });
        roundtrip(Command::Macros {
            stage: b'C',
            pairs: vec![
                ("j".into(), "mx.test".into()),
                ("{daemon_name}".into(), "smtpd".into()),
            ],
        });
        roundtrip(Command::Connect {
            hostname: "mail.example.com".into(),
            family: Family::Inet,
            port: 25,
            address: "192.0.2.1".into(),
        });
        roundtrip(Command::Connect {
            hostname: "localhost".into(),
            family: Family::Unix,
            port: 0,
            address: "/run/x".into(),
        });
        roundtrip(Command::Helo("mail.example.com".into()));
        roundtrip(Command::Mail(vec![
            "<a@example.com>".into(),
            "SIZE=100".into(),
        ]));
        roundtrip(Command::Rcpt(vec!["<b@example.org>".into()]));
        roundtrip(Command::Header {
            name: "Subject".into(),
            value: b" hi".to_vec(),
        });
        roundtrip(Command::Body(b"line\r\n".to_vec()));
        for c in [
            Command::Data,
            Command::EndOfHeaders,
            Command::EndOfMessage,
            Command::Abort,
            Command::Quit,
            Command::QuitNewConnection,
        ] {
            roundtrip(c);
        }
    }

    #[test]
    fn responses_round_trip_and_limits() {
        for r in [
            Response::OptNeg {
                version: 6,
                actions: SMFIF_ADDHDRS | SMFIF_CHGHDRS,
                protocol: SMFIP_HDR_LEADSPC,
            },
            Response::Continue,
            Response::Accept,
            Response::Tempfail,
            Response::ReplyCode("550 5.7.1 rejected".into()),
            Response::AddHeader {
                name: "X".into(),
                value: "y".into(),
            },
            Response::InsertHeader {
                index: 0,
                name: "DKIM-Signature".into(),
                value: " v=1".into(),
            },
            Response::ChangeHeader {
                index: 1,
                name: "Authentication-Results".into(),
                value: String::new(),
            },
            Response::Quarantine("dmarc".into()),
        ] {
            let f = r.encode();
            assert_eq!(Response::decode(&f[4..]).unwrap(), r);
        }
        assert_eq!(frame_len([0, 0, 0, 0]), Err(ProtocolError::Empty));
        assert_eq!(
            frame_len([0, 0x20, 0, 0]),
            Err(ProtocolError::TooLarge(0x200000))
        );
        assert_eq!(
            Command::decode(b"Z"),
            Err(ProtocolError::UnknownCommand('Z'))
        );
        assert_eq!(
            Command::decode(b"Oabc"),
            Err(ProtocolError::Malformed("optneg"))
        );
        assert_eq!(
            Command::decode(b"Cnohostnul"),
            Err(ProtocolError::Malformed("connect"))
        );
        // A NUL in a header value cannot cut the frame short.
        let f = Response::AddHeader {
            name: "X".into(),
            value: "a\0b".into(),
        }
        .encode();
        assert_eq!(
            Response::decode(&f[4..]).unwrap(),
            Response::AddHeader {
                name: "X".into(),
                value: "ab".into()
            }
        );
    }
}
