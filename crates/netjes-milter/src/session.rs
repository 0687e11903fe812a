//! One milter connection as a state machine, free of IO: commands go in,
//! replies come out, and at the end of a message the session hands over a
//! [`Job`] (the message and its SMTP facts) for the signing and
//! verification work that needs DNS. The server stays a thin loop around it.

use crate::protocol::{
    Command, Family, Response, SMFIF_ADDHDRS, SMFIF_CHGHDRS, SMFIF_QUARANTINE, SMFIP_HDR_LEADSPC,
    SMFIP_NOUNKNOWN, VERSION,
};
use std::collections::HashMap;
use std::net::IpAddr;

/// Messages over this are not buffered further: they are passed without
/// signing or verification and say so in a header (Postfix's own
/// message_size_limit defaults to 10 MB).
pub const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// Postfix sends a dozen macros; more distinct names than this are not
/// kept, so a connection cannot grow the map without end.
pub const MAX_MACROS: usize = 256;
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
    /// The message as received: header fields with CRLF, a blank line, the body.
    pub message: Vec<u8>,
    /// The header fields in order, for header changes by index.
    pub headers: Vec<(String, String)>,
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
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    size: usize,
    too_large: bool,
}

#[derive(Debug, Default)]
pub struct Session {
    conn: Connection,
    /// Macros by name, kept across the connection ({j}, {daemon_name}) and
    /// the message ({i}, {auth_authen}).
    macros: HashMap<String, String>,
    msg: Option<Message>,
    /// The MTA agreed to SMFIP_HDR_LEADSPC: header values arrive with the
    /// space after the colon.
    leadspc: bool,
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

    pub fn handle(&mut self, cmd: Command) -> Step {
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
                let proto = protocol & (SMFIP_HDR_LEADSPC | SMFIP_NOUNKNOWN);
                self.leadspc = proto & SMFIP_HDR_LEADSPC != 0;
                Step::Reply(vec![Response::OptNeg {
                    version: version.min(VERSION),
                    actions: actions & want,
                    protocol: proto,
                }])
            }
            Command::Macros { pairs, .. } => {
                for (k, v) in pairs {
                    let k = k.trim_start_matches('{').trim_end_matches('}').to_string();
                    if self.macros.len() < MAX_MACROS || self.macros.contains_key(&k) {
                        self.macros.insert(k, v);
                    }
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
            Command::Data | Command::EndOfHeaders | Command::Unknown(_) => {
                Step::Reply(vec![Continue])
            }
            Command::Header { name, value } => {
                let m = self.message();
                m.size += name.len() + value.len() + 4;
                if m.size > MAX_MESSAGE {
                    m.too_large = true;
                } else {
                    m.headers.push((name, value));
                }
                Step::Reply(vec![Continue])
            }
            Command::Body(chunk) => {
                let m = self.message();
                m.size += chunk.len();
                if m.size > MAX_MESSAGE {
                    m.too_large = true;
                    m.body = Vec::new();
                } else if !m.too_large {
                    m.body.extend_from_slice(&chunk);
                }
                Step::Reply(vec![Continue])
            }
            Command::EndOfMessage => {
                let m = self.msg.take().unwrap_or_default();
                if m.too_large {
                    return Step::Reply(vec![
                        Response::AddHeader {
                            name: "X-Netjes".into(),
                            value: format!("not checked: the message is over {MAX_MESSAGE} octets"),
                        },
                        Response::Accept,
                    ]);
                }
                let mut message = Vec::with_capacity(m.size + 64);
                let mut headers = Vec::with_capacity(m.headers.len());
                for (name, value) in &m.headers {
                    message.extend_from_slice(name.as_bytes());
                    message.push(b':');
                    // Without HDR_LEADSPC the MTA drops the one space after
                    // the colon; put it back so the field is as sent.
                    if !self.leadspc {
                        message.push(b' ');
                    }
                    // Folded fields come with LF line ends from Postfix.
                    message.extend(crlf(value));
                    message.extend_from_slice(b"\r\n");
                    headers.push((name.clone(), String::from_utf8_lossy(value).into_owned()));
                }
                message.extend_from_slice(b"\r\n");
                message.extend(crlf(&m.body));
                Step::EndOfMessage(Box::new(Job {
                    conn: self.conn.clone(),
                    mail_from: m.mail_from,
                    rcpts: m.rcpts,
                    auth_user: self.macro_value("auth_authen").map(String::from),
                    queue_id: self.macro_value("i").map(String::from),
                    message,
                    headers,
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
                Step::Reply(vec![])
            }
            Command::Quit => Step::Close,
        }
    }
}

/// Line ends as CRLF: Postfix hands header continuation lines and body
/// lines over with bare LF or CRLF depending on the version and path.
fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 40);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
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
                protocol: SMFIP_HDR_LEADSPC | SMFIP_NOUNKNOWN
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
        assert_eq!(
            job.message,
            b"From: a@example.com\r\nSubject: one\r\n\tfolded\r\n\r\nhello\r\nworld\r\n"
        );
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
        assert!(!String::from_utf8_lossy(&job.message).contains("X-Half"));
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
        assert_eq!(job.message, b"Subject: hi\r\n\r\n");
    }
}
