//! A SpamAssassin client (the spamc/spamd protocol, SPAMC/1.5), to fold
//! SpamAssassin's score and rules into the report as mail-tester does.
//!
//! REPORT is asked rather than SYMBOLS, because it carries each rule's
//! points and description. spamc refuses messages over 500 KB by default
//! and spamd scans what it gets, so larger messages are not sent.

use serde::Serialize;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// spamc's default --max-size.
pub const MAX_MESSAGE: usize = 500 * 1024;
/// A REPORT answer is a page of text; more than this is not spamd.
const MAX_ANSWER: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpamRule {
    pub name: String,
    pub points: f32,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpamAssassin {
    pub score: f32,
    /// spamd's required_score.
    pub threshold: f32,
    pub spam: bool,
    pub rules: Vec<SpamRule>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpamdError {
    #[error("cannot connect to spamd at {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("spamd at {0} did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("talking to spamd: {0}")]
    Io(#[from] std::io::Error),
    #[error("the message is {0} octets; SpamAssassin is not asked about messages over {MAX_MESSAGE} (spamc's limit)")]
    TooLarge(usize),
    #[error("spamd answered something that is not SPAMD/1.x: {0}")]
    Protocol(String),
}

/// Asks spamd at `addr` (HOST:PORT) for its report on `raw`.
pub async fn ask(addr: &str, raw: &[u8], timeout: Duration) -> Result<SpamAssassin, SpamdError> {
    if raw.len() > MAX_MESSAGE {
        return Err(SpamdError::TooLarge(raw.len()));
    }
    let work = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| SpamdError::Connect(addr.to_string(), e))?;
        s.write_all(
            format!("REPORT SPAMC/1.5\r\nContent-length: {}\r\n\r\n", raw.len()).as_bytes(),
        )
        .await?;
        s.write_all(raw).await?;
        s.shutdown().await?;
        let mut answer = Vec::new();
        (&mut s)
            .take(MAX_ANSWER as u64 + 1)
            .read_to_end(&mut answer)
            .await?;
        if answer.len() > MAX_ANSWER {
            return Err(SpamdError::Protocol(format!(
                "an answer over {MAX_ANSWER} octets"
            )));
        }
        parse_answer(&String::from_utf8_lossy(&answer))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| SpamdError::Timeout(addr.to_string(), timeout))?
}

/// Reads a REPORT answer: the status line, the Spam: header and the rule
/// table of the report text.
pub fn parse_answer(text: &str) -> Result<SpamAssassin, SpamdError> {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("");
    let mut parts = status.split_whitespace();
    if !parts.next().is_some_and(|p| p.starts_with("SPAMD/1.")) {
        return Err(SpamdError::Protocol(status.chars().take(80).collect()));
    }
    if parts.next() != Some("0") {
        return Err(SpamdError::Protocol(status.chars().take(80).collect()));
    }
    let mut verdict = None;
    for l in lines {
        if let Some(v) = l.strip_prefix("Spam:") {
            // "Spam: True ; 9.0 / 5.0"
            let (flag, nums) = v
                .split_once(';')
                .ok_or_else(|| SpamdError::Protocol(l.to_string()))?;
            let (score, thr) = nums
                .split_once('/')
                .ok_or_else(|| SpamdError::Protocol(l.to_string()))?;
            let num = |s: &str| {
                s.trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| SpamdError::Protocol(l.to_string()))
            };
            verdict = Some((
                flag.trim().eq_ignore_ascii_case("true"),
                num(score)?,
                num(thr)?,
            ));
        }
    }
    let (spam, score, threshold) =
        verdict.ok_or_else(|| SpamdError::Protocol("no Spam: header".into()))?;
    let mut rules: Vec<SpamRule> = Vec::new();
    let mut in_table = false;
    for l in body.lines() {
        if l.starts_with("----") {
            in_table = true;
            continue;
        }
        if !in_table || l.trim().is_empty() {
            continue;
        }
        let mut w = l.split_whitespace();
        let first = w.next().unwrap_or("");
        match (first.parse::<f32>(), w.next()) {
            (Ok(points), Some(name))
                if points.is_finite()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                rules.push(SpamRule {
                    name: name.to_string(),
                    points,
                    description: w.collect::<Vec<_>>().join(" "),
                });
            }
            // A description continued on the next line.
            _ => {
                if let Some(r) = rules.last_mut() {
                    r.description.push(' ');
                    r.description.push_str(l.trim());
                }
            }
        }
        if rules.len() >= 200 {
            break;
        }
    }
    Ok(SpamAssassin {
        score,
        threshold,
        spam,
        rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_report() {
        let a = "SPAMD/1.1 0 EX_OK\r\nContent-length: 9\r\nSpam: True ; 9.0 / 5.0\r\n\r\nSpam detection software\n\n pts rule name              description\n---- ---------------------- --------------------------------------------------\n 2.7 MISSING_DATE           Missing Date: header\n-0.0 NO_RECEIVED            Informational: message has no Received headers\n 1.8 DRUGS_ERECTILE         Refers to an\n                            erectile drug\n\n";
        let r = parse_answer(a).unwrap();
        assert!(r.spam);
        assert_eq!((r.score, r.threshold), (9.0, 5.0));
        assert_eq!(r.rules.len(), 3);
        assert_eq!(r.rules[2].description, "Refers to an erectile drug");
        assert!(parse_answer("SPAMD/1.1 76 Bad header line\r\n\r\n").is_err());
        assert!(parse_answer("HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_answer("SPAMD/1.1 0 EX_OK\r\nSpam: True ; x / 5\r\n\r\n").is_err());
    }
}
