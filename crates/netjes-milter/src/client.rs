//! A milter client, as Postfix speaks to a milter: for tests and the
//! load benchmark, which drive the milter over its real wire protocol.

use crate::protocol::{encode_command, exchange, frame_len, Command, Family, Response};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct Client {
    pub stream: TcpStream,
    /// The protocol flags the milter agreed to: which steps it answers.
    pub protocol: u32,
}

impl Client {
    pub async fn connect(addr: SocketAddr, ip: &str) -> Client {
        Client::connect_as(addr, Family::Inet, ip).await
    }

    /// Connects with the client address as the MTA gives it, which may be
    /// unknown (family U) or not an address at all.
    pub async fn connect_as(addr: SocketAddr, family: Family, ip: &str) -> Client {
        let mut c = Client {
            stream: TcpStream::connect(addr).await.unwrap(),
            protocol: 0,
        };
        // Offered as Postfix offers it: every step may be skipped or left
        // unanswered.
        let r = c
            .ask(Command::OptNeg {
                version: 6,
                actions: 0x1ff,
                protocol: 0x1fffff,
            })
            .await;
        match r[0] {
            Response::OptNeg {
                version: 6,
                protocol,
                ..
            } => c.protocol = protocol,
            ref other => panic!("{other:?}"),
        }
        c.ask(Command::Connect {
            hostname: "client.test".into(),
            family,
            port: 4000,
            address: ip.into(),
        })
        .await;
        c.ask(Command::Helo("client.test".into())).await;
        c
    }

    pub async fn read(&mut self) -> Option<Response> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).await.ok()?;
        let mut p = vec![0u8; frame_len(len).ok()?];
        self.stream.read_exact(&mut p).await.ok()?;
        Some(Response::decode(&p).unwrap())
    }

    /// Sends a command and reads replies up to the one that ends it (none
    /// for a step the milter agreed to leave unanswered).
    pub async fn ask(&mut self, c: Command) -> Vec<Response> {
        let (_, expects_reply) = exchange(&c, self.protocol);
        self.stream.write_all(&encode_command(&c)).await.unwrap();
        let mut out = Vec::new();
        if !expects_reply {
            return out;
        }
        while let Some(r) = self.read().await {
            let last = r.ends_command();
            out.push(r);
            if last {
                break;
            }
        }
        out
    }

    /// One message; returns the end-of-message replies.
    pub async fn message(&mut self, from: &str, raw: &str, auth: Option<&str>) -> Vec<Response> {
        if let Some(a) = auth {
            self.ask(Command::Macros {
                stage: b'M',
                pairs: vec![("{auth_authen}".into(), a.into())],
            })
            .await;
        }
        self.ask(Command::Mail(vec![format!("<{from}>")])).await;
        self.ask(Command::Rcpt(vec!["<bob@example.org>".into()]))
            .await;
        self.ask(Command::Data).await;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        // Fields, unfolded into one value each; Postfix passes the folding
        // line breaks as LF.
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                let last = fields.last_mut().unwrap();
                last.1.push('\n');
                last.1.push_str(line);
            } else {
                let (n, v) = line.split_once(':').unwrap();
                fields.push((n.into(), v.into()));
            }
        }
        for (n, v) in fields {
            self.ask(Command::Header {
                name: n,
                value: v.into_bytes(),
            })
            .await;
        }
        self.ask(Command::EndOfHeaders).await;
        // In pieces of at most 65,535 octets, as Postfix sends a body
        // (MILTER_CHUNK_SIZE); the pieces cut lines anywhere.
        for piece in body.as_bytes().chunks(65535) {
            self.ask(Command::Body(piece.to_vec())).await;
        }
        self.ask(Command::EndOfMessage).await
    }
}

/// The message as the MTA writes it, replies applied in order as Postfix
/// applies them: each field inserted at index 0 goes on top of the ones
/// before it (SMFIR_INSHEADER), and SMFIR_CHGHEADER with an empty value
/// deletes the index-th field of that name as the header stands at that
/// moment, so the fields after it move up one.
pub fn apply(raw: &str, replies: &[Response]) -> String {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        match fields.last_mut() {
            Some(last) if line.starts_with([' ', '\t']) => {
                last.push_str("\r\n");
                last.push_str(line);
            }
            _ => fields.push(line.to_string()),
        }
    }
    let named = |f: &str, name: &str| {
        f.split_once(':')
            .is_some_and(|(n, _)| n.trim_end().eq_ignore_ascii_case(name))
    };
    for r in replies {
        match r {
            Response::InsertHeader {
                index: 0,
                name,
                value,
            } => fields.insert(0, format!("{name}:{}", value.replace('\n', "\r\n"))),
            Response::ChangeHeader { index, name, value } if value.is_empty() => {
                let at = fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| named(f, name))
                    .nth((*index as usize).saturating_sub(1))
                    .map(|(i, _)| i);
                if let Some(i) = at {
                    fields.remove(i);
                }
            }
            _ => {}
        }
    }
    format!("{}\r\n\r\n{body}", fields.join("\r\n"))
}
