//! Handing a message to a relay (RFC 5321): the reports, alerts and digests
//! netjes writes go out through the user's own MTA, which signs and queues
//! them. TLS as the relay needs it (RFC 3207 STARTTLS, or RFC 8314 implicit
//! TLS on 465), and AUTH PLAIN or LOGIN (RFC 4954, RFC 4616) when it asks
//! for a login.

use crate::smtp::{command, reply};
use crate::tls::{client_config, handshake};
use base64::Engine;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    /// Plain text: only for a relay on loopback.
    None,
    /// STARTTLS when the relay offers it, plain text when it does not. The
    /// certificate is checked when TLS is used; a failed check is an error,
    /// never a silent fall back to plain text.
    Opportunistic,
    /// STARTTLS, required (a relay that does not offer it is an error).
    Starttls,
    /// TLS from the first byte (RFC 8314 §3, port 465).
    Implicit,
}

impl RelayTls {
    pub fn parse(s: &str) -> Option<RelayTls> {
        Some(match s.to_ascii_lowercase().as_str() {
            "none" => RelayTls::None,
            "opportunistic" => RelayTls::Opportunistic,
            "starttls" => RelayTls::Starttls,
            "implicit" => RelayTls::Implicit,
            _ => return None,
        })
    }
    /// TLS is certain before anything secret is sent.
    pub fn required(self) -> bool {
        matches!(self, RelayTls::Starttls | RelayTls::Implicit)
    }
}

/// A login at the relay. Debug never shows the password.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials {{ user: {:?}, password: <hidden> }}", self.user)
    }
}

/// How a message is handed to a relay.
#[derive(Debug, Clone)]
pub struct Relay {
    /// HOST:PORT.
    pub addr: String,
    pub tls: RelayTls,
    /// CA certificates to trust beside the system's (a private CA).
    pub ca_file: Option<std::path::PathBuf>,
    /// Our name in EHLO.
    pub helo: String,
    pub timeout: std::time::Duration,
    pub auth: Option<Credentials>,
}

/// The relay settings as a configuration file or the command line gives
/// them, before they are checked.
#[derive(Debug, Clone, Default)]
pub struct RelaySettings<'a> {
    pub addr: &'a str,
    /// none, opportunistic, starttls or implicit; unset: starttls when the
    /// old `relay_starttls` switch is on, none otherwise.
    pub tls: Option<&'a str>,
    pub legacy_starttls: bool,
    pub user: Option<&'a str>,
    pub password_file: Option<&'a std::path::Path>,
    pub ca_file: Option<&'a std::path::Path>,
}

/// HOST:PORT on loopback, where plain text and a clear password cannot be
/// read by anyone else.
pub fn is_loopback(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback()) || addr.starts_with("localhost:")
}

impl RelaySettings<'_> {
    /// Checks the settings and reads the password file. Every problem is
    /// pushed onto `errors`, named with `at` (the configuration section or
    /// the flag); the relay is returned when there was none.
    pub fn relay(&self, at: &str, helo: &str, errors: &mut Vec<String>) -> Option<Relay> {
        let before = errors.len();
        if self.addr.rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err()) {
            errors.push(format!("{at}: relay {:?} is not HOST:PORT", self.addr));
        }
        let tls = match (self.tls, self.legacy_starttls) {
            (Some(t), false) => RelayTls::parse(t).unwrap_or_else(|| {
                errors.push(format!("{at}: relay_tls {t:?} is none, opportunistic, starttls or implicit"));
                RelayTls::None
            }),
            (Some(_), true) => {
                errors.push(format!("{at}: relay_starttls is the old name of relay_tls = \"starttls\"; give one of them"));
                RelayTls::None
            }
            (None, true) => RelayTls::Starttls,
            (None, false) => RelayTls::None,
        };
        let loopback = is_loopback(self.addr);
        if !loopback && !tls.required() {
            errors.push(format!("{at}: relay {} is off loopback: it needs relay_tls = \"starttls\" or \"implicit\"", self.addr));
        }
        let auth = match (self.user, self.password_file) {
            (Some(user), Some(file)) => match netjes_net::read_secret_file(file) {
                Ok(password) => Some(Credentials { user: user.to_string(), password }),
                Err(e) => {
                    errors.push(format!("{at}: relay_password_file {e}"));
                    None
                }
            },
            (None, None) => None,
            _ => {
                errors.push(format!("{at}: relay_user and relay_password_file go together"));
                None
            }
        };
        (errors.len() == before).then(|| Relay {
            addr: self.addr.to_string(),
            tls,
            ca_file: self.ca_file.map(|p| p.to_path_buf()),
            helo: helo.to_string(),
            timeout: std::time::Duration::from_secs(60),
            auth,
        })
    }
}

/// Why a message did not go. Display gives the step and the relay's
/// reply, never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The relay answered a step with this code and text.
    Refused { step: &'static str, code: u16, text: String },
    /// No connection, no TLS, no answer in time, or a broken reply.
    Failed(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Refused { step, code, text } => write!(f, "{step}: {code} {text}"),
            SendError::Failed(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for SendError {}

impl From<String> for SendError {
    fn from(e: String) -> SendError {
        SendError::Failed(e)
    }
}

impl SendError {
    /// The recipient was refused for good (a 5xx to RCPT, RFC 5321
    /// §4.2.1): trying again will not help.
    pub fn recipient_refused_for_good(&self) -> bool {
        matches!(self, SendError::Refused { step: "RCPT", code: 500..=599, .. })
    }
}

/// Sends one message through a relay: EHLO, TLS as asked, AUTH when a
/// login is set, MAIL, RCPT for each recipient, DATA, dot-stuffed. An
/// error says which step the relay refused and its reply; it never holds
/// the password.
pub async fn send(relay: &Relay, from: &str, to: &[String], message: &[u8]) -> Result<(), SendError> {
    tokio::time::timeout(relay.timeout, send_inner(relay, from, to, message))
        .await
        .map_err(|_| SendError::Failed(format!("{}: no answer within {:?}", relay.addr, relay.timeout)))?
}

async fn expect<S: AsyncRead + AsyncWrite + Unpin>(r: &mut BufReader<S>, step: &'static str, cmd: Option<&str>, want: u16) -> Result<Vec<String>, SendError> {
    let (code, lines) = match cmd {
        Some(c) => command(r, c).await?,
        None => reply(r).await?,
    };
    if code != want {
        return Err(SendError::Refused { step, code, text: lines.join(" ") });
    }
    Ok(lines)
}

fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr).trim_matches(['[', ']'])
}

/// A connection, plain or TLS, as one type.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
type Conn = BufReader<Box<dyn Io>>;

/// One step of a connection test, as the UI shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProbeStep {
    /// connect, TLS, greeting, EHLO, STARTTLS or AUTH.
    pub step: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Connects, greets, says EHLO, protects and logs in as the relay asks:
/// everything before MAIL. Each step done is written to `log`.
async fn open(relay: &Relay, log: &mut Vec<ProbeStep>) -> Result<Conn, SendError> {
    let mut done = |step: &'static str, detail: String| log.push(ProbeStep { step, ok: true, detail });
    let tcp = tokio::net::TcpStream::connect(&relay.addr).await.map_err(|e| SendError::Failed(format!("{}: {e}", relay.addr)))?;
    done("connect", relay.addr.clone());
    let ehlo = format!("EHLO {}", relay.helo);
    let mut r: Conn = if relay.tls == RelayTls::Implicit {
        let tls = handshake(client_config(relay.ca_file.as_deref())?, host_of(&relay.addr), tcp).await?;
        done("TLS", "implicit TLS, certificate valid".into());
        BufReader::new(Box::new(tls))
    } else {
        BufReader::new(Box::new(tcp))
    };
    let greeting = expect(&mut r, "the greeting", None, 220).await?;
    done("greeting", greeting.join(" "));
    let mut caps = expect(&mut r, "EHLO", Some(&ehlo), 250).await?;
    done("EHLO", caps.iter().skip(1).cloned().collect::<Vec<_>>().join(", "));
    let mut tls = relay.tls == RelayTls::Implicit;
    let offered = caps.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS"));
    match (relay.tls, offered) {
        (RelayTls::Starttls, false) => return Err(SendError::Failed(format!("{} does not offer STARTTLS", relay.addr))),
        (RelayTls::Starttls | RelayTls::Opportunistic, true) => {
            expect(&mut r, "STARTTLS", Some("STARTTLS"), 220).await?;
            let stream = handshake(client_config(relay.ca_file.as_deref())?, host_of(&relay.addr), r.into_inner()).await?;
            r = BufReader::new(Box::new(stream));
            // RFC 3207 §4.2: what was said before TLS is forgotten.
            caps = expect(&mut r, "EHLO", Some(&ehlo), 250).await?;
            done("STARTTLS", "certificate valid".into());
            tls = true;
        }
        _ => {}
    }
    if let Some(login) = &relay.auth {
        if !tls && !is_loopback(&relay.addr) {
            return Err(SendError::Failed(format!("{}: no TLS, so the password is not sent", relay.addr)));
        }
        authenticate(&mut r, &caps, login).await?;
        done("AUTH", format!("logged in as {}", login.user));
    }
    Ok(r)
}

async fn send_inner(relay: &Relay, from: &str, to: &[String], message: &[u8]) -> Result<(), SendError> {
    let mut r = open(relay, &mut Vec::new()).await?;
    transaction(&mut r, from, to, message).await
}

/// A connection test: connect, TLS, EHLO and AUTH as configured, then
/// QUIT; no mail is sent. Every step is listed, the one that failed last
/// with the reason (never the password).
pub async fn probe(relay: &Relay) -> Vec<ProbeStep> {
    let mut log = Vec::new();
    let result = tokio::time::timeout(relay.timeout, async {
        let mut r = open(relay, &mut log).await?;
        let _ = command(&mut r, "QUIT").await;
        Ok::<(), SendError>(())
    })
    .await;
    let failure = match result {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {:?}", relay.timeout)),
    };
    if let Some(detail) = failure {
        let step = ["connect", "TLS", "greeting", "EHLO", "STARTTLS", "AUTH"].into_iter().find(|s| !log.iter().any(|l| l.step == *s) && step_applies(relay, s)).unwrap_or("AUTH");
        log.push(ProbeStep { step, ok: false, detail });
    }
    log
}

fn step_applies(relay: &Relay, step: &str) -> bool {
    match step {
        "TLS" => relay.tls == RelayTls::Implicit,
        "STARTTLS" => matches!(relay.tls, RelayTls::Starttls | RelayTls::Opportunistic),
        "AUTH" => relay.auth.is_some(),
        _ => true,
    }
}

/// The mechanisms the relay offers (RFC 4954 §3: `AUTH PLAIN LOGIN`; the
/// `AUTH=` form is what old Microsoft servers still send).
fn mechanisms(caps: &[String]) -> Vec<String> {
    caps.iter()
        .filter_map(|c| {
            let up = c.to_ascii_uppercase();
            up.strip_prefix("AUTH ").or_else(|| up.strip_prefix("AUTH=")).map(|m| m.split_whitespace().map(String::from).collect::<Vec<_>>())
        })
        .flatten()
        .collect()
}

async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(r: &mut BufReader<S>, caps: &[String], login: &Credentials) -> Result<(), SendError> {
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let offered = mechanisms(caps);
    if offered.iter().any(|m| m == "PLAIN") {
        // RFC 4616 §2: authzid (empty), NUL, authcid, NUL, password.
        let token = b64(format!("\0{}\0{}", login.user, login.password).as_bytes());
        expect(r, "AUTH PLAIN", Some(&format!("AUTH PLAIN {token}")), 235).await?;
    } else if offered.iter().any(|m| m == "LOGIN") {
        expect(r, "AUTH LOGIN", Some("AUTH LOGIN"), 334).await?;
        expect(r, "AUTH LOGIN (user)", Some(&b64(login.user.as_bytes())), 334).await?;
        expect(r, "AUTH LOGIN", Some(&b64(login.password.as_bytes())), 235).await?;
    } else if offered.is_empty() {
        return Err(SendError::Failed("a login is set, but the relay offers no AUTH".into()));
    } else {
        return Err(SendError::Failed(format!("the relay offers AUTH {}, none of which netjes speaks (PLAIN, LOGIN)", offered.join(" "))));
    }
    Ok(())
}

async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(r: &mut BufReader<S>, from: &str, to: &[String], message: &[u8]) -> Result<(), SendError> {
    expect(r, "MAIL", Some(&format!("MAIL FROM:<{from}>")), 250).await?;
    for rcpt in to {
        expect(r, "RCPT", Some(&format!("RCPT TO:<{rcpt}>")), 250).await?;
    }
    expect(r, "DATA", Some("DATA"), 354).await?;
    let mut data = Vec::with_capacity(message.len() + 64);
    for line in message.split_inclusive(|b| *b == b'\n') {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        if body.starts_with(b".") {
            data.push(b'.');
        }
        data.extend_from_slice(body);
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    r.get_mut().write_all(&data).await.map_err(|e| SendError::Failed(e.to_string()))?;
    expect(r, "the message", None, 250).await?;
    let _ = command(r, "QUIT").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_are_read_in_both_forms() {
        let caps = vec!["PIPELINING".to_string(), "AUTH login PLAIN".to_string(), "AUTH=LOGIN".to_string()];
        assert_eq!(mechanisms(&caps), ["LOGIN", "PLAIN", "LOGIN"]);
        assert!(mechanisms(&["AUTHX PLAIN".to_string()]).is_empty());
    }

    #[test]
    fn settings_are_checked_all_at_once() {
        let mut errors = Vec::new();
        let s = RelaySettings { addr: "mail.example.com:587", tls: Some("maybe"), user: Some("u"), ..Default::default() };
        assert!(s.relay("reports.send", "mx", &mut errors).is_none());
        assert_eq!(errors.len(), 3, "{errors:?}");
        let mut errors = Vec::new();
        let s = RelaySettings { addr: "mail.example.com:465", tls: Some("implicit"), ..Default::default() };
        assert_eq!(s.relay("x", "mx", &mut errors).unwrap().tls, RelayTls::Implicit);
        let s = RelaySettings { addr: "127.0.0.1:25", legacy_starttls: true, ..Default::default() };
        assert_eq!(s.relay("x", "mx", &mut errors).unwrap().tls, RelayTls::Starttls);
        let s = RelaySettings { addr: "127.0.0.1:25", ..Default::default() };
        assert_eq!(s.relay("x", "mx", &mut errors).unwrap().tls, RelayTls::None);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn the_password_never_shows() {
        let c = Credentials { user: "app".into(), password: "s3cret".into() };
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}
