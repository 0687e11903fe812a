//! One milter connection as a state machine, free of IO: commands go in,
//! replies come out, and at the end of a message the session hands over a
//! [`Job`] (the message and its SMTP facts) for the signing and
//! verification work that needs DNS. The server stays a thin loop around it.

use crate::protocol::{
    exchange, Command, Family, Response, NO_REPLIES, SMFIF_ADDHDRS, SMFIF_CHGHDRS,
    SMFIF_QUARANTINE, SMFIP_HDR_LEADSPC, SMFIP_NOUNKNOWN, VERSION,
};
use netjes_auth::message::{BodyHash, BodyHashes};
use std::collections::HashMap;
use std::net::IpAddr;

/// A header block over this is not kept: the message cannot be checked,
/// and mail from outside is refused (work::Malformed), never passed
/// unchecked; our own goes out unsigned. The body is never
/// kept at all: it streams into the body hashes, so a message of any size
/// costs the same memory. (Postfix's header_size_limit is 100 KB a field.)
pub const MAX_HEADER_BLOCK: usize = netjes_auth::message::MAX_HEADER_BYTES;

/// Postfix sends a dozen macros; more distinct names than this are not
/// kept, so a connection cannot grow the map without end.
pub const MAX_MACROS: usize = 256;
/// Macro names and values kept per connection, in octets: Postfix's
/// dozen macros are a few hundred; before, 256 macros of 1 MiB each held
/// 257 MiB per connection.
pub const MAX_MACRO_BYTES: usize = 64 * 1024;
/// Recipients kept per message (for logs and reports): Postfix's
/// smtpd_recipient_limit defaults to 1000.
pub const MAX_RCPTS: usize = 1000;

/// The facts of the SMTP connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub hostname: String,
    pub ip: Option<IpAddr>,
    pub helo: String,
}

/// What the end of a message needs to decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub conn: Connection,
    pub mail_from: String,
    pub rcpts: Vec<String>,
    /// The SASL login ({auth_authen}), when the client authenticated.
    pub auth_user: Option<String>,
    /// Postfix's queue id ({i}), for logs.
    pub queue_id: Option<String>,
    /// The header fields as received, with CRLF, and the blank line.
    pub header_block: Vec<u8>,
    /// The body hashes that signing, verification and sealing need,
    /// computed as the body streamed past.
    pub body_hashes: Vec<BodyHash>,
    pub body_octets: u64,
    /// The header fields in order, for header changes by index.
    pub headers: Vec<(String, String)>,
    /// The header block was over [`MAX_HEADER_BLOCK`] and was not kept:
    /// the message cannot be checked.
    pub oversized: bool,
}

/// What the server does after a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these replies (none for commands that get no reply).
    Reply(Vec<Response>),
    /// Do the end-of-message work, then send its replies.
    EndOfMessage(Box<Job>),
    /// Close the connection.
    Close,
}

#[derive(Debug, Default)]
struct Message {
    mail_from: String,
    rcpts: Vec<String>,
    headers: Vec<(String, String)>,
    header_block: Vec<u8>,
    /// Set at the end of the headers, from the signatures they hold.
    hashes: Option<BodyHashes>,
    /// The last body chunk ended in CR: an LF that starts the next one
    /// does not get another.
    body_cr: bool,
    /// Scratch for a chunk with CRLF line ends, reused.
    scratch: Vec<u8>,
    too_large: bool,
}

impl Message {
    /// The body hashers, made at the end of the headers (EOH, or the first
    /// body chunk or the end of the message when the MTA skipped EOH): the
    /// header block gets its blank line then, and is complete.
    fn hashes(&mut self) -> &mut BodyHashes {
        if self.hashes.is_none() {
            self.header_block.extend_from_slice(b"\r\n");
        }
        let block = &self.header_block;
        self.hashes
            .get_or_insert_with(|| BodyHashes::for_headers(block))
    }
}

#[derive(Debug, Default)]
pub struct Session {
    conn: Connection,
    /// Macros by name, kept across the connection ({j}, {daemon_name}) and
    /// the message ({i}, {auth_authen}).
    macros: HashMap<String, String>,
    /// The octets of `macros`, names and values.
    macro_bytes: usize,
    msg: Option<Message>,
    /// The MTA agreed to SMFIP_HDR_LEADSPC: header values arrive with the
    /// space after the colon.
    leadspc: bool,
    /// The protocol flags agreed: the steps answered with no reply.
    protocol: u32,
}

fn strip_brackets(s: &str) -> String {
    s.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    pub fn macro_value(&self, name: &str) -> Option<&str> {
        // Postfix sends "{auth_authen}" and "j" alike; look either up.
        let bare = name.trim_start_matches('{').trim_end_matches('}');
        self.macros
            .get(bare)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    fn message(&mut self) -> &mut Message {
        self.msg.get_or_insert_with(Message::default)
    }

    /// One command in, what to do out. A step agreed to go unanswered
    /// (SMFIP_NR_*) gets no "continue"; every step is still taken.
    pub fn handle(&mut self, cmd: Command) -> Step {
        let (_, reply) = exchange(&cmd, self.protocol);
        match self.step(cmd) {
            Step::Reply(r) if !reply && r == [Response::Continue] => Step::Reply(vec![]),
            other => other,
        }
    }

    fn step(&mut self, cmd: Command) -> Step {
        use Response::Continue;
        match cmd {
            Command::OptNeg {
                version,
                actions,
                protocol,
            } => {
                // The actions we use, of those offered; every step stays on,
                // replies included, and header values keep their leading
                // space when the MTA offers it.
                let want = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE;
                let proto = protocol & (SMFIP_HDR_LEADSPC | SMFIP_NOUNKNOWN | NO_REPLIES);
                self.leadspc = proto & SMFIP_HDR_LEADSPC != 0;
                self.protocol = proto;
                Step::Reply(vec![Response::OptNeg {
                    version: version.min(VERSION),
                    actions: actions & want,
                    protocol: proto,
                }])
            }
            Command::Macros { pairs, .. } => {
                for (k, v) in pairs {
                    let k = k.trim_start_matches('{').trim_end_matches('}').to_string();
                    let old = self.macros.get(&k).map_or(0, |o| k.len() + o.len());
                    let bytes = self.macro_bytes - old + k.len() + v.len();
                    if bytes > MAX_MACRO_BYTES
                        || (self.macros.len() >= MAX_MACROS && old == 0)
                    {
                        continue;
                    }
                    self.macro_bytes = bytes;
                    self.macros.insert(k, v);
                }
                Step::Reply(vec![])
            }
            Command::Connect {
                hostname,
                family,
                address,
                ..
            } => {
                self.conn = Connection {
                    hostname,
                    ip: match family {
                        Family::Inet | Family::Inet6 => {
                            address.trim_start_matches("IPv6:").parse().ok()
                        }
                        _ => None,
                    },
                    helo: String::new(),
                };
                Step::Reply(vec![Continue])
            }
            Command::Helo(h) => {
                self.conn.helo = h;
                Step::Reply(vec![Continue])
            }
            Command::Mail(args) => {
                // A new message: whatever the last one left is gone.
                self.msg = Some(Message {
                    mail_from: args.first().map(|a| strip_brackets(a)).unwrap_or_default(),
                    ..Default::default()
                });
                Step::Reply(vec![Continue])
            }
            Command::Rcpt(args) => {
                let m = self.message();
                if let Some(r) = args.first().filter(|_| m.rcpts.len() < MAX_RCPTS) {
                    m.rcpts.push(strip_brackets(r));
                }
                Step::Reply(vec![Continue])
            }
            Command::Data | Command::Unknown(_) => Step::Reply(vec![Continue]),
            Command::EndOfHeaders => {
                let m = self.message();
                if !m.too_large {
                    m.hashes();
                }
                Step::Reply(vec![Continue])
            }
            Command::Header { name, value } => {
                let leadspc = self.leadspc;
                let m = self.message();
                if m.too_large || m.hashes.is_some() {
                    // Over the limit, or a field after the body began
                    // (no MTA does that): not kept.
                    m.too_large = true;
                    return Step::Reply(vec![Continue]);
                }
                let at = m.header_block.len();
                m.header_block.extend_from_slice(name.as_bytes());
                m.header_block.push(b':');
                // Without HDR_LEADSPC the MTA drops the one space after
                // the colon; put it back so the field is as sent.
                if !leadspc {
                    m.header_block.push(b' ');
                }
                // Folded fields come with LF line ends from Postfix.
                let mut cr = false;
                crlf_into(&value, &mut cr, &mut m.header_block);
                m.header_block.extend_from_slice(b"\r\n");
                // Room for the blank line, as the parser will count it.
                if m.header_block.len() + 2 > MAX_HEADER_BLOCK {
                    m.header_block.truncate(at);
                    m.too_large = true;
                } else {
                    m.headers
                        .push((name, String::from_utf8_lossy(&value).into_owned()));
                }
                Step::Reply(vec![Continue])
            }
            Command::Body(chunk) => {
                let m = self.message();
                if !m.too_large {
                    let mut scratch = std::mem::take(&mut m.scratch);
                    scratch.clear();
                    let mut cr = m.body_cr;
                    crlf_into(&chunk, &mut cr, &mut scratch);
                    m.body_cr = cr;
                    m.hashes().write(&scratch);
                    m.scratch = scratch;
                }
                Step::Reply(vec![Continue])
            }
            Command::EndOfMessage => {
                let mut m = self.msg.take().unwrap_or_default();
                if m.too_large {
                    // Nothing of it is kept; the work refuses it.
                    m.header_block.clear();
                    m.headers.clear();
                    m.hashes = Some(BodyHashes::for_headers(b""));
                } else {
                    m.hashes();
                }
                let hashes = m.hashes.take().expect("made just above");
                let body_octets = hashes.octets();
                Step::EndOfMessage(Box::new(Job {
                    oversized: m.too_large,
                    conn: self.conn.clone(),
                    mail_from: m.mail_from,
                    rcpts: m.rcpts,
                    auth_user: self.macro_value("auth_authen").map(String::from),
                    queue_id: self.macro_value("i").map(String::from),
                    header_block: m.header_block,
                    body_hashes: hashes.finish(),
                    body_octets,
                    headers: m.headers,
                }))
            }
            Command::Abort => {
                // The message is gone; the connection (and its HELO) stays.
                self.msg = None;
                Step::Reply(vec![])
            }
            Command::QuitNewConnection => {
                self.msg = None;
                self.conn = Connection::default();
                self.macros.clear();
                self.macro_bytes = 0;
                Step::Reply(vec![])
            }
            Command::Quit => Step::Close,
        }
    }
}

/// Line ends as CRLF: Postfix hands header continuation lines and body
/// lines over with bare LF or CRLF depending on the version and path.
/// `cr` carries "the last octet was CR" from one chunk to the next.
fn crlf_into(data: &[u8], cr: &mut bool, out: &mut Vec<u8>) {
    out.reserve(data.len() + data.len() / 40);
    let mut rest = data;
    while let Some(i) = rest.iter().position(|b| *b == b'\n') {
        let before_cr = if i == 0 { *cr } else { rest[i - 1] == b'\r' };
        out.extend_from_slice(&rest[..i]);
        if !before_cr {
            out.push(b'\r');
        }
        out.push(b'\n');
        *cr = false;
        rest = &rest[i + 1..];
    }
    if let Some(last) = rest.last() {
        *cr = *last == b'\r';
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(s: &mut Session, cmds: Vec<Command>) -> Vec<Step> {
        cmds.into_iter().map(|c| s.handle(c)).collect()
    }

    fn message_cmds(from: &str, subject: &str) -> Vec<Command> {
        vec![
            Command::Macros {
                stage: b'M',
                pairs: vec![
                    ("{auth_authen}".into(), "alice".into()),
                    ("i".into(), "4AbC".into()),
                ],
            },
            Command::Mail(vec![format!("<{from}>"), "SIZE=10".into()]),
            Command::Rcpt(vec!["<bob@example.org>".into()]),
            Command::Data,
            Command::Header {
                name: "From".into(),
                value: format!(" {from}").into_bytes(),
            },
            Command::Header {
                name: "Subject".into(),
                value: format!(" {subject}\n\tfolded").into_bytes(),
            },
            Command::EndOfHeaders,
            Command::Body(b"hello\nworld\r\n".to_vec()),
            Command::EndOfMessage,
        ]
    }

    #[test]
    fn negotiation_keeps_only_what_we_use() {
        let mut s = Session::new();
        let st = s.handle(Command::OptNeg {
            version: 6,
            actions: 0x1ff,
            protocol: 0x1fffff,
        });
        assert_eq!(
            st,
            Step::Reply(vec![Response::OptNeg {
                version: 6,
                actions: SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_QUARANTINE,
                protocol: SMFIP_HDR_LEADSPC | SMFIP_NOUNKNOWN | NO_REPLIES
            }])
        );
    }

    #[test]
    fn two_messages_on_one_connection_with_an_abort_between() {
        let mut s = Session::new();
        s.handle(Command::OptNeg {
            version: 6,
            actions: 0x1ff,
            protocol: 0x1fffff,
        });
        feed(
            &mut s,
            vec![
                Command::Connect {
                    hostname: "mail.example.com".into(),
                    family: Family::Inet,
                    port: 25,
                    address: "192.0.2.1".into(),
                },
                Command::Helo("mail.example.com".into()),
            ],
        );
        let steps = feed(&mut s, message_cmds("a@example.com", "one"));
        let Step::EndOfMessage(job) = steps.last().unwrap().clone() else {
            panic!("{steps:?}")
        };
        assert_eq!(job.conn.ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(job.conn.helo, "mail.example.com");
        assert_eq!(job.mail_from, "a@example.com");
        assert_eq!(job.rcpts, vec!["bob@example.org"]);
        assert_eq!(job.auth_user.as_deref(), Some("alice"));
        assert_eq!(job.queue_id.as_deref(), Some("4AbC"));
        let block = b"From: a@example.com\r\nSubject: one\r\n\tfolded\r\n\r\n";
        assert_eq!(job.header_block, block);
        // The body was hashed, not kept: as the whole message hashes.
        let whole = [&block[..], b"hello\r\nworld\r\n"].concat();
        let expect = netjes_auth::message::parse(&whole).unwrap();
        let msg =
            netjes_auth::message::parse_prehashed(&job.header_block, &job.body_hashes).unwrap();
        assert_eq!(msg.body_hashes, job.body_hashes);
        assert_eq!(job.body_octets, 14);
        assert!(
            expect.body_hashes.is_empty(),
            "no signatures: none asked for"
        );
        let relaxed = netjes_auth::message::BodyHashes::for_headers(&whole[..block.len()]);
        let mut r = relaxed;
        r.write(b"hello\r\nworld\r\n");
        assert_eq!(r.finish(), job.body_hashes);
        // Aborted mid-message: nothing of it reaches the next one.
        feed(
            &mut s,
            vec![
                Command::Mail(vec!["<x@example.net>".into()]),
                Command::Header {
                    name: "X-Half".into(),
                    value: b" 1".to_vec(),
                },
                Command::Abort,
            ],
        );
        let steps = feed(&mut s, message_cmds("c@example.com", "two"));
        let Step::EndOfMessage(job) = steps.last().unwrap().clone() else {
            panic!()
        };
        assert_eq!(job.mail_from, "c@example.com");
        assert!(!String::from_utf8_lossy(&job.header_block).contains("X-Half"));
        assert_eq!(s.handle(Command::Quit), Step::Close);
    }

    #[test]
    fn macros_and_recipients_are_bounded() {
        let mut s = Session::new();
        for i in 0..(MAX_MACROS + 50) {
            s.handle(Command::Macros {
                stage: b'C',
                pairs: vec![(format!("{{m{i}}}"), "x".into())],
            });
        }
        assert_eq!(s.macros.len(), MAX_MACROS);
        // Large values: bounded in octets, whatever their number.
        let mut big = Session::new();
        for i in 0..256 {
            big.handle(Command::Macros {
                stage: b'C',
                pairs: vec![(format!("{{b{i}}}"), "v".repeat(1 << 20))],
            });
        }
        assert!(big.macro_bytes <= MAX_MACRO_BYTES);
        assert_eq!(big.macros.len(), 0, "a 1 MiB value is never kept");
        big.handle(Command::Macros {
            stage: b'C',
            pairs: vec![("{i}".into(), "4AbC".into()), ("{i}".into(), "5XyZ".into())],
        });
        assert_eq!(big.macro_value("i"), Some("5XyZ"));
        assert_eq!(big.macro_bytes, 5);
        s.handle(Command::Mail(vec!["<a@x>".into()]));
        for i in 0..(MAX_RCPTS + 5) {
            s.handle(Command::Rcpt(vec![format!("<r{i}@x>")]));
        }
        let Step::EndOfMessage(job) = s.handle(Command::EndOfMessage) else {
            panic!()
        };
        assert_eq!(job.rcpts.len(), MAX_RCPTS);
    }

    #[test]
    fn without_leading_space_negotiated_the_space_is_restored() {
        let mut s = Session::new();
        s.handle(Command::OptNeg {
            version: 6,
            actions: 0x1ff,
            protocol: 0,
        });
        let steps = feed(
            &mut s,
            vec![
                Command::Mail(vec!["<a@x>".into()]),
                Command::Header {
                    name: "Subject".into(),
                    value: b"hi".to_vec(),
                },
                Command::EndOfMessage,
            ],
        );
        let Step::EndOfMessage(job) = steps.last().unwrap().clone() else {
            panic!()
        };
        assert_eq!(job.header_block, b"Subject: hi\r\n\r\n");
    }

    /// Bare LF becomes CRLF, also when a CR ends one body chunk and its LF
    /// starts the next.
    #[test]
    fn line_ends_across_chunks() {
        let mut out = Vec::new();
        let mut cr = false;
        for piece in [&b"a\nb\r"[..], b"\nc\r\n", b"\n", b"d"] {
            crlf_into(piece, &mut cr, &mut out);
        }
        assert_eq!(out, b"a\r\nb\r\nc\r\n\r\nd");
    }

    /// A header block over the limit is not kept, and the job says so
    /// (the work refuses it; before, it was accepted unchecked).
    #[test]
    fn a_header_block_over_the_limit_is_marked_not_passed() {
        let mut s = Session::new();
        s.handle(Command::Mail(vec!["<a@x>".into()]));
        for _ in 0..(MAX_HEADER_BLOCK / 1000 + 2) {
            s.handle(Command::Header {
                name: "X-Pad".into(),
                value: vec![b'x'; 1000],
            });
        }
        s.handle(Command::Body(vec![b'y'; 100]));
        match s.handle(Command::EndOfMessage) {
            Step::EndOfMessage(job) => {
                assert!(job.oversized);
                assert!(job.header_block.is_empty() && job.headers.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }
}
