//! The RFC 5322.From author domain(s): the one reading of the From field
//! that verify, the milter, analyze and the reports share.
//!
//! DMARC stands or falls with this reading. If netjes reads a different
//! domain than the reader's mail client shows, a spoof passes ("Composition
//! Kills", Chen, Paxson and Jiang, USENIX Security 2020). So the field is
//! parsed by the RFC 5322 §3.4 grammar, obsolete forms included, and every
//! form that could be read two ways is decided here, once:
//!
//! - White space, comments and folding around the `@` and the dots are
//!   legal (obs-local-part, obs-domain, §4.4): `ceo @ victim . test` is
//!   `victim.test`.
//! - A domain is converted by UTS 46 (which maps full-width letters and the
//!   ideographic full stop, and normalises to NFC) to its A-label form,
//!   lower case, without a trailing dot (RFC 7489 §6.6.1). A domain that
//!   UTS 46 refuses (bidirectional controls, zero-width or other invisible
//!   characters, spaces) is refused, never read as "no policy".
//! - Control characters, NUL and octets that are not UTF-8 are refused.
//! - An encoded word may not stand in an address (RFC 2047 §5): refused.
//! - No From, several From fields, an empty group, a mailbox without a
//!   domain, a domain literal, two `@`: refused (RFC 7489 §6.6.1 says such
//!   mail is typically rejected; Gmail rejects several From fields).
//! - Several mailboxes in one From field (legal with a Sender field) give
//!   several author domains; DMARC applies the strictest failing policy.
//! - An encoded word in a display name that decodes to an address shows the
//!   reader a second domain: that domain is judged too, as is a Sender or
//!   Resent-From at another domain, which clients show as "on behalf of".
//!
//! Free of IO: DNS comes later, in [`super::evaluate`].

use serde::Serialize;

/// More distinct domains than this (From, Sender, Resent-From and display
/// names together) are refused, not half checked: each costs a tree walk.
pub const MAX_AUTHOR_DOMAINS: usize = 8;
/// More mailboxes than this in the From field are refused.
pub const MAX_MAILBOXES: usize = 100;

/// Why a message has no usable author domain. Each is refused by DMARC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum AuthorError {
    #[error("the message has no From field (RFC 5322 §3.6 requires one)")]
    NoFrom,
    #[error("the message has {0} From fields; RFC 5322 §3.6 allows one")]
    SeveralFromFields(usize),
    #[error("the From field holds no mailbox (an empty group or an empty field)")]
    NoMailbox,
    #[error("the From address {0:?} has no domain")]
    NoDomain(String),
    #[error("the From address is a domain literal {0}, which has no DMARC policy")]
    DomainLiteral(String),
    #[error("an encoded word stands in the From address, which RFC 2047 §5 forbids")]
    EncodedWordInAddress,
    #[error("the From field has a character that may not appear in it: {0}")]
    BadCharacter(String),
    #[error("the From field does not parse: {0}")]
    Syntax(String),
    #[error("the From domain {domain:?} is not a valid host name: {why}")]
    InvalidDomain { domain: String, why: String },
    #[error("the message names {0} author domains; at most {MAX_AUTHOR_DOMAINS} are checked")]
    TooManyDomains(usize),
}

/// One mailbox of the From field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mailbox {
    /// The display name, encoded words decoded; None when there is none.
    pub display_name: Option<String>,
    /// The display name came (partly) from RFC 2047 encoded words.
    pub display_encoded: bool,
    /// The domains of addresses that appear inside the display name.
    pub display_domains: Vec<String>,
    pub local_part: String,
    /// The domain in A-label form, lower case, without a trailing dot.
    pub domain: String,
}

impl Mailbox {
    pub fn address(&self) -> String {
        format!("{}@{}", self.local_part, self.domain)
    }
}

/// Where a domain that is judged besides the From domains was shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShownDomain {
    pub domain: String,
    /// "sender", "resent-from" or "display-name".
    pub source: &'static str,
}

/// The authors of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authors {
    pub mailboxes: Vec<Mailbox>,
    /// The distinct author domains, in order of appearance.
    pub domains: Vec<String>,
    /// Other domains a reader may be shown as the author, not among
    /// `domains`: judged too, their policy applied when they fail.
    pub shown: Vec<ShownDomain>,
}

/// The header fields as the MTA sees them: the block ends at the first
/// line that is neither a field nor a continuation. Postfix does this
/// (is_header() fails, and the rest is body), so the command line decides
/// a message with a stray line as the milter behind Postfix does: a From
/// after that line is not a From. A first line that starts with white space
/// ends the block at once.
pub fn mta_header_fields(raw: &[u8]) -> Vec<(&[u8], Vec<u8>)> {
    let mut out: Vec<(&[u8], Vec<u8>)> = Vec::new();
    for line in raw.split(|b| *b == b'\n').take(crate::message::MAX_HEADERS * 8) {
        let l = line.strip_suffix(b"\r").unwrap_or(line);
        if l.is_empty() {
            break;
        }
        if l[0] == b' ' || l[0] == b'\t' {
            match out.last_mut() {
                Some((_, v)) => {
                    v.extend_from_slice(b"\r\n");
                    v.extend_from_slice(l);
                    continue;
                }
                None => break,
            }
        }
        let Some(c) = l.iter().position(|b| *b == b':') else {
            break;
        };
        let name = trim_wsp_end(&l[..c]);
        if name.is_empty() || name.iter().any(|b| !(33..=126).contains(b)) {
            break;
        }
        out.push((name, l[c + 1..].to_vec()));
    }
    out
}

fn trim_wsp_end(s: &[u8]) -> &[u8] {
    let mut e = s.len();
    while e > 0 && (s[e - 1] == b' ' || s[e - 1] == b'\t') {
        e -= 1;
    }
    &s[..e]
}

/// The authors of the message whose header block (or whole message) is
/// `raw`.
pub fn authors_of(raw: &[u8]) -> Result<Authors, AuthorError> {
    let fields = mta_header_fields(raw);
    let named = |n: &str| -> Vec<&Vec<u8>> {
        fields
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(n.as_bytes()))
            .map(|(_, v)| v)
            .collect()
    };
    let from = named("From");
    let value = match from.as_slice() {
        [] => return Err(AuthorError::NoFrom),
        [one] => *one,
        many => return Err(AuthorError::SeveralFromFields(many.len())),
    };
    let mailboxes = parse_mailbox_list(value)?;
    if mailboxes.is_empty() {
        return Err(AuthorError::NoMailbox);
    }
    let mut domains: Vec<String> = Vec::new();
    for m in &mailboxes {
        if !domains.contains(&m.domain) {
            domains.push(m.domain.clone());
        }
    }
    let mut shown: Vec<ShownDomain> = Vec::new();
    let add = |domain: String, source: &'static str, shown: &mut Vec<ShownDomain>| {
        if !domains.contains(&domain) && !shown.iter().any(|s| s.domain == domain) {
            shown.push(ShownDomain { domain, source });
        }
    };
    for m in &mailboxes {
        // Only encoded words: a plain display name is what the sender
        // typed and is shown as a name; analyze flags it.
        if m.display_encoded {
            for d in &m.display_domains {
                add(d.clone(), "display-name", &mut shown);
            }
        }
    }
    for (field, source) in [("Sender", "sender"), ("Resent-From", "resent-from")] {
        for v in named(field) {
            // A broken Sender is not the author: RFC 7489 judges From. Its
            // readable domains are judged, the rest is left to the client.
            if let Ok(list) = parse_mailbox_list(v) {
                for m in list {
                    add(m.domain, source, &mut shown);
                }
            }
        }
    }
    let total = domains.len() + shown.len();
    if total > MAX_AUTHOR_DOMAINS {
        return Err(AuthorError::TooManyDomains(total));
    }
    Ok(Authors {
        mailboxes,
        domains,
        shown,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An atom; `encoded` when it has the form of an RFC 2047 encoded word.
    Atom { text: String, encoded: bool },
    Quoted(String),
    Literal(String),
    Special(u8),
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

fn is_encoded_word(s: &str) -> bool {
    encoded_word_len(s.as_bytes()) == Some(s.len())
}

/// The length of the RFC 2047 encoded word `=?charset?e?text?=` at the
/// start of `b`, if one is there.
fn encoded_word_len(b: &[u8]) -> Option<usize> {
    if !b.starts_with(b"=?") {
        return None;
    }
    let token = |from: usize| {
        b[from..]
            .iter()
            .position(|c| *c == b'?' || *c <= b' ' || *c == 0x7f)
            .map(|n| from + n)
    };
    let cs_end = token(2).filter(|e| *e > 2 && b[*e] == b'?')?;
    let enc = *b.get(cs_end + 1)?;
    if !matches!(enc, b'B' | b'b' | b'Q' | b'q') || b.get(cs_end + 2) != Some(&b'?') {
        return None;
    }
    let text_end = token(cs_end + 3).filter(|e| b[*e] == b'?')?;
    (b.get(text_end + 1) == Some(&b'=')).then_some(text_end + 2)
}

/// Splits a field value into tokens, dropping white space, folding and
/// comments (CFWS), as RFC 5322 §3.2.2 lets them stand between any two.
fn tokenize(value: &[u8]) -> Result<Vec<Token>, AuthorError> {
    let text = std::str::from_utf8(value).map_err(|e| {
        AuthorError::BadCharacter(format!(
            "octet 0x{:02x} at {} is not UTF-8",
            value[e.valid_up_to()],
            e.valid_up_to()
        ))
    })?;
    if let Some((i, c)) = text
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\t' | '\r' | '\n'))
    {
        return Err(AuthorError::BadCharacter(format!(
            "control character U+{:04X} at {i}",
            c as u32
        )));
    }
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'(' => {
                i = crate::lex::skip_comment(b, i)
                    .ok_or_else(|| AuthorError::Syntax("a comment is not closed".into()))?
            }
            b'"' => {
                let (s, next) = crate::lex::quoted(b, i, b'"')
                    .ok_or_else(|| AuthorError::Syntax("a quoted string is not closed".into()))?;
                out.push(Token::Quoted(s));
                i = next;
            }
            b'[' => {
                let (s, next) = crate::lex::quoted(b, i, b']').ok_or_else(|| {
                    AuthorError::Syntax("a domain literal is not closed or holds a bracket".into())
                })?;
                out.push(Token::Literal(s));
                i = next;
            }
            b'=' if encoded_word_len(&b[i..]).is_some() => {
                // An encoded word is one token even where its text holds a
                // dot, so that it is recognised wherever it stands.
                let n = encoded_word_len(&b[i..]).unwrap_or(0);
                out.push(Token::Atom {
                    text: text[i..i + n].to_string(),
                    encoded: true,
                });
                i += n;
            }
            c if is_atext(c) => {
                let start = i;
                while i < b.len() && is_atext(b[i]) {
                    i += 1;
                }
                let text = text[start..i].to_string();
                out.push(Token::Atom {
                    encoded: is_encoded_word(&text),
                    text,
                });
            }
            c => {
                if b")<>:;@\\,.]".contains(&c) {
                    out.push(Token::Special(c));
                    i += 1;
                } else {
                    return Err(AuthorError::Syntax(format!(
                        "unexpected {:?} at {i}",
                        c as char
                    )));
                }
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn special(&self, c: u8) -> bool {
        self.peek() == Some(&Token::Special(c))
    }

    fn expect(&mut self, c: u8) -> Result<(), AuthorError> {
        if self.special(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(AuthorError::Syntax(format!(
                "expected {:?}, found {}",
                c as char,
                self.describe()
            )))
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "the end of the field".into(),
            Some(Token::Special(c)) => format!("{:?}", *c as char),
            Some(Token::Atom { text, .. }) => format!("{text:?}"),
            Some(Token::Quoted(s)) => format!("the quoted string {s:?}"),
            Some(Token::Literal(s)) => format!("the literal [{s}]"),
        }
    }

    /// address-list, obs-addr-list's empty elements allowed.
    fn address_list(&mut self) -> Result<Vec<Mailbox>, AuthorError> {
        let mut out = Vec::new();
        loop {
            while self.special(b',') {
                self.pos += 1;
            }
            if self.peek().is_none() {
                return Ok(out);
            }
            self.address(&mut out)?;
            if out.len() > MAX_MAILBOXES {
                return Err(AuthorError::Syntax(format!(
                    "more than {MAX_MAILBOXES} mailboxes"
                )));
            }
            match self.peek() {
                None => return Ok(out),
                Some(Token::Special(b',')) => {}
                _ => {
                    return Err(AuthorError::Syntax(format!(
                        "expected ',' after an address, found {}",
                        self.describe()
                    )))
                }
            }
        }
    }

    /// One mailbox, or a group with its mailboxes.
    fn address(&mut self, out: &mut Vec<Mailbox>) -> Result<(), AuthorError> {
        let start = self.pos;
        let words = self.phrase();
        match self.peek() {
            Some(Token::Special(b':')) => {
                if words.is_empty() {
                    return Err(AuthorError::Syntax("a group without a name".into()));
                }
                self.pos += 1;
                loop {
                    while self.special(b',') {
                        self.pos += 1;
                    }
                    if self.special(b';') {
                        self.pos += 1;
                        return Ok(());
                    }
                    if self.peek().is_none() {
                        // RFC 5322 needs the ';'; a group cut short is read
                        // as far as it goes.
                        return Ok(());
                    }
                    let start = self.pos;
                    let words = self.phrase();
                    out.push(self.mailbox_after(start, words)?);
                    if !matches!(self.peek(), Some(Token::Special(b',' | b';')) | None) {
                        return Err(AuthorError::Syntax(format!(
                            "expected ',' or ';' in a group, found {}",
                            self.describe()
                        )));
                    }
                }
            }
            _ => {
                out.push(self.mailbox_after(start, words)?);
                Ok(())
            }
        }
    }

    /// A mailbox whose leading words (from `start`) are read: they were
    /// the local part of an addr-spec when an '@' or '.' follows, else a
    /// display name.
    fn mailbox_after(&mut self, start: usize, words: Vec<Token>) -> Result<Mailbox, AuthorError> {
        if matches!(self.peek(), Some(Token::Special(b'@' | b'.'))) {
            self.pos = start;
            return self.addr_spec();
        }
        self.mailbox(words)
    }

    /// The words of a phrase (display name), obs-phrase's dots included;
    /// stops before anything else.
    fn phrase(&mut self) -> Vec<Token> {
        let mut words = Vec::new();
        while let Some(t) = self.peek() {
            match t {
                Token::Atom { .. } | Token::Quoted(_) => {
                    words.push(t.clone());
                    self.pos += 1;
                }
                Token::Special(b'.') if !words.is_empty() => {
                    // obs-phrase allows "." after the first word; an
                    // addr-spec's dot is told apart by the '@' that follows.
                    let save = self.pos;
                    let mut j = self.pos;
                    while matches!(
                        self.toks.get(j),
                        Some(Token::Atom { .. } | Token::Quoted(_) | Token::Special(b'.'))
                    ) {
                        j += 1;
                    }
                    if self.toks.get(j) == Some(&Token::Special(b'@')) {
                        self.pos = save;
                        return words;
                    }
                    words.push(t.clone());
                    self.pos += 1;
                }
                _ => break,
            }
        }
        words
    }

    /// A name-addr after its display name, or a lone word that is not an
    /// address.
    fn mailbox(&mut self, words: Vec<Token>) -> Result<Mailbox, AuthorError> {
        if self.special(b'<') {
            self.pos += 1;
            self.obs_route()?;
            let mut m = self.addr_spec()?;
            self.expect(b'>')?;
            let (name, encoded) = display_name(&words);
            m.display_domains = name.as_deref().map(domains_in_text).unwrap_or_default();
            m.display_name = name;
            m.display_encoded = encoded;
            return Ok(m);
        }
        if words.is_empty() && self.special(b'@') {
            return self.addr_spec();
        }
        if words
            .iter()
            .any(|w| matches!(w, Token::Atom { encoded: true, .. }))
        {
            return Err(AuthorError::EncodedWordInAddress);
        }
        if words.is_empty() {
            return Err(AuthorError::Syntax(format!(
                "expected a mailbox, found {}",
                self.describe()
            )));
        }
        Err(AuthorError::NoDomain(words_text(&words, " ")))
    }

    /// obs-route: "@a.example,@b.example:" before the addr-spec; ignored.
    fn obs_route(&mut self) -> Result<(), AuthorError> {
        if !self.special(b'@') {
            return Ok(());
        }
        let save = self.pos;
        // Only a route if a ':' comes before the '>'.
        let mut j = self.pos;
        while let Some(t) = self.toks.get(j) {
            match t {
                Token::Special(b':') => break,
                Token::Special(b'>') => return Ok(()),
                _ => j += 1,
            }
        }
        if self.toks.get(j).is_none() {
            self.pos = save;
            return Ok(());
        }
        self.pos = j + 1;
        Ok(())
    }

    /// local-part "@" domain, obsolete forms included.
    fn addr_spec(&mut self) -> Result<Mailbox, AuthorError> {
        let mut local = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Atom { encoded: true, .. }) => {
                    return Err(AuthorError::EncodedWordInAddress)
                }
                Some(t @ (Token::Atom { .. } | Token::Quoted(_))) => {
                    if let Token::Quoted(q) = t {
                        if is_encoded_word(q) {
                            return Err(AuthorError::EncodedWordInAddress);
                        }
                    }
                    local.push(t.clone());
                    self.pos += 1;
                }
                _ => {
                    return Err(AuthorError::Syntax(format!(
                        "expected a local part, found {}",
                        self.describe()
                    )))
                }
            }
            if self.special(b'.') {
                self.pos += 1;
                continue;
            }
            break;
        }
        let local_part = words_text(&local, ".");
        if !self.special(b'@') {
            return Err(AuthorError::NoDomain(local_part));
        }
        self.pos += 1;
        let domain = self.domain()?;
        if self.special(b'@') {
            return Err(AuthorError::Syntax(
                "an address with two '@' (only the last part would be its domain)".into(),
            ));
        }
        Ok(Mailbox {
            display_name: None,
            display_encoded: false,
            display_domains: vec![],
            local_part,
            domain,
        })
    }

    /// dot-atom or obs-domain, a trailing dot dropped; a domain literal is
    /// refused.
    fn domain(&mut self) -> Result<String, AuthorError> {
        if let Some(Token::Literal(l)) = self.peek() {
            return Err(AuthorError::DomainLiteral(format!("[{l}]")));
        }
        let mut labels = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Atom { encoded: true, .. }) => {
                    return Err(AuthorError::EncodedWordInAddress)
                }
                Some(Token::Atom { text, .. }) => {
                    labels.push(text.clone());
                    self.pos += 1;
                }
                _ => {
                    return Err(AuthorError::Syntax(format!(
                        "expected a domain after '@', found {}",
                        self.describe()
                    )))
                }
            }
            if self.special(b'.') {
                self.pos += 1;
                if matches!(self.peek(), Some(Token::Atom { .. })) {
                    continue;
                }
                // A trailing dot: the root, dropped.
            }
            break;
        }
        author_domain(&labels.join("."))
    }
}

fn words_text(words: &[Token], sep: &str) -> String {
    words
        .iter()
        .map(|w| match w {
            Token::Atom { text, .. } => text.clone(),
            Token::Quoted(q) => q.clone(),
            Token::Literal(l) => format!("[{l}]"),
            Token::Special(c) => (*c as char).to_string(),
        })
        .collect::<Vec<_>>()
        .join(sep)
}

/// The display name, encoded words decoded (RFC 2047 §6.2), and whether
/// any were.
fn display_name(words: &[Token]) -> (Option<String>, bool) {
    if words.is_empty() {
        return (None, false);
    }
    let encoded = words
        .iter()
        .any(|w| matches!(w, Token::Atom { encoded: true, .. }));
    let raw = words_text(words, " ");
    if !encoded {
        return (Some(raw), false);
    }
    let field = format!("Subject: {raw}\r\n\r\n");
    let decoded = mail_parser::MessageParser::default()
        .parse_headers(field.as_bytes())
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or(raw);
    (Some(decoded), true)
}

/// The valid domains after each '@' in a text (a display name): what a
/// reader might take for an address.
pub fn domains_in_text(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, _) in text.match_indices('@') {
        let rest = &text[i + 1..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | '-' | '\u{3002}' | '\u{ff0e}')))
            .unwrap_or(rest.len());
        let cand = rest[..end].trim_end_matches(['.', '\u{3002}', '\u{ff0e}']);
        if let Ok(d) = author_domain(cand) {
            if d.contains('.') && !out.contains(&d) {
                out.push(d);
            }
        }
    }
    out
}

/// An author domain as DMARC looks it up: UTS 46 (mapping, NFC), A-labels,
/// lower case, no trailing dot, each label 1 to 63 octets of letters,
/// digits and hyphens, 253 octets at most. Anything else is refused.
pub fn author_domain(raw: &str) -> Result<String, AuthorError> {
    let invalid = |why: String| AuthorError::InvalidDomain {
        domain: raw.to_string(),
        why,
    };
    let trimmed = raw.strip_suffix('.').unwrap_or(raw);
    if trimmed.is_empty() {
        return Err(invalid("it is empty".into()));
    }
    if let Some(c) = trimmed
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || is_invisible(*c))
    {
        return Err(invalid(format!(
            "it holds the invisible or space character U+{:04X}",
            c as u32
        )));
    }
    let ascii = idna::domain_to_ascii_strict(trimmed)
        .map_err(|_| invalid("UTS 46 processing refuses it".into()))?;
    let ascii = ascii.strip_suffix('.').unwrap_or(&ascii).to_ascii_lowercase();
    if ascii.len() > 253 {
        return Err(invalid("it is over 253 octets".into()));
    }
    for label in ascii.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(invalid("a label is empty or over 63 octets".into()));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || label.starts_with('-')
            || label.ends_with('-')
        {
            return Err(invalid(format!("the label {label:?} is not a host name label")));
        }
    }
    Ok(ascii)
}

/// Characters UTS 46 would silently drop (so `vic\u{200B}tim` would read as
/// `victim` to DMARC, and as something else to a person): refused instead.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFF}' | '\u{E0000}'..='\u{E0FFF}')
}

/// A second, independent reading, for the fuzz target and the property
/// test: whether the field's text, with comments and white space removed
/// and UTS 46 mapping applied, holds `domain`. Whatever [`authors_of`]
/// returns as an author domain must pass it: a domain netjes judges is one
/// the From field really contains.
pub fn field_holds_domain(value: &[u8], domain: &str) -> bool {
    let text = String::from_utf8_lossy(value);
    let mut stripped = String::new();
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in text.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                stripped.push(c);
            }
            continue;
        }
        match c {
            '\\' => escaped = true,
            '(' if !quoted => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            '"' => quoted = !quoted,
            c if c.is_whitespace() => {}
            c => stripped.push(c),
        }
    }
    // The runs that could be a host name (any non-ASCII character may map
    // to one: full-width letters, ideographic full stops), each compared
    // in A-label form after UTS 46.
    stripped
        .split(|c: char| c.is_ascii() && !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        .filter_map(|run| idna::domain_to_ascii(run).ok())
        .any(|a| a.trim_end_matches('.').to_ascii_lowercase() == domain)
}

/// The mailboxes of a From (or Sender, Resent-From) field value.
pub fn parse_mailbox_list(value: &[u8]) -> Result<Vec<Mailbox>, AuthorError> {
    let toks = tokenize(value)?;
    let mut p = Parser { toks, pos: 0 };
    p.address_list()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(from: &str) -> Result<Vec<String>, AuthorError> {
        authors_of(format!("From:{from}\r\nTo: x@y.example\r\n\r\nbody").as_bytes())
            .map(|a| a.domains)
    }

    fn one(from: &str) -> String {
        match domains(from) {
            Ok(d) if d.len() == 1 => d[0].clone(),
            other => panic!("{from:?}: {other:?}"),
        }
    }

    #[test]
    fn ordinary_forms() {
        for f in [
            " ceo@victim.test",
            " <ceo@victim.test>",
            " CEO <ceo@Victim.TEST>",
            " \"Doe, John\" <ceo@victim.test>",
            " ceo@victim.test (the boss)",
            " (c) ceo(x)@(y)victim.test(z)",
            " John Q. Public <ceo@victim.test>",
            " <@relay.example,@other.example:ceo@victim.test>",
            " \"a@b\"@victim.test",
            " \"ceo@attacker.test\" <ceo@victim.test>",
            " grp: ceo@victim.test;",
            " ceo@victim.test.",
            "\r\n ceo@victim.test",
            " =?utf-8?q?J=C3=B6rg?= <ceo@victim.test>",
        ] {
            assert_eq!(one(f), "victim.test", "{f:?}");
        }
    }

    #[test]
    fn white_space_and_folding_inside_the_address_are_the_obsolete_syntax() {
        for f in [
            " <ceo@ victim.test>",
            " <ceo @victim.test>",
            " ceo@ victim . test",
            " ceo@\r\n victim.test",
            " ceo@\tvictim\t.test",
            " <ceo@victim.\r\n test>",
            " ceo . x @ victim.test",
        ] {
            assert_eq!(one(f), "victim.test", "{f:?}");
        }
    }

    #[test]
    fn unicode_is_mapped_by_uts46_or_refused() {
        // Full-width letters and the ideographic full stop map to ASCII.
        assert_eq!(one(" ceo@ｖｉｃｔｉｍ．ｔｅｓｔ"), "victim.test");
        assert_eq!(one(" ceo@victim\u{3002}test"), "victim.test");
        assert_eq!(one(" ceo@bücher.example"), "xn--bcher-kva.example");
        // NFC: u + combining diaeresis is the same domain.
        assert_eq!(one(" ceo@bu\u{308}cher.example"), "xn--bcher-kva.example");
        for bad in [
            " ceo@vic\u{200B}tim.test",
            " ceo@vic\u{200D}tim.test",
            " ceo@victim\u{202E}.test",
            " ceo@victim\u{00A0}.test",
            " ceo@victim\u{3000}.test",
            " ceo@vic\u{FEFF}tim.test",
            " ceo@vic_tim.test",
            " ceo@-victim.test",
        ] {
            assert!(
                matches!(domains(bad), Err(AuthorError::InvalidDomain { .. })),
                "{bad:?}: {:?}",
                domains(bad)
            );
        }
        for bad in [" ceo@vic\u{0}tim.test", " ceo@victim.test\u{7}"] {
            assert!(matches!(domains(bad), Err(AuthorError::BadCharacter(_))), "{bad:?}");
        }
        let raw = b"From: ceo@vic\xfftim.test\r\n\r\n";
        assert!(matches!(authors_of(raw), Err(AuthorError::BadCharacter(_))));
    }

    #[test]
    fn no_usable_author_is_an_error() {
        assert_eq!(
            authors_of(b"To: a@b.example\r\n\r\n"),
            Err(AuthorError::NoFrom)
        );
        assert_eq!(domains(" undisclosed:;"), Err(AuthorError::NoMailbox));
        assert_eq!(domains(" "), Err(AuthorError::NoMailbox));
        assert!(matches!(domains(" ceo"), Err(AuthorError::NoDomain(_))));
        assert!(matches!(domains(" <ceo>"), Err(AuthorError::NoDomain(_))));
        assert_eq!(
            domains(" =?utf-8?q?ceo=40victim.test?="),
            Err(AuthorError::EncodedWordInAddress)
        );
        assert_eq!(
            domains(" =?utf-8?q?ceo?=@victim.test"),
            Err(AuthorError::EncodedWordInAddress)
        );
        assert!(matches!(domains(" a@b@victim.test"), Err(AuthorError::Syntax(_))));
        assert!(matches!(domains(" ceo@[192.0.2.1]"), Err(AuthorError::DomainLiteral(_))));
        assert!(matches!(domains(" <ceo@victim.test"), Err(AuthorError::Syntax(_))));
        assert!(matches!(domains(" ceo@victim.test (open"), Err(AuthorError::Syntax(_))));
        assert!(matches!(domains(" \"open@victim.test"), Err(AuthorError::Syntax(_))));
        assert!(matches!(domains(" ceo@victim.test x@y.test"), Err(AuthorError::Syntax(_))));
    }

    #[test]
    fn several_authors() {
        assert_eq!(
            domains(" a@one.example, b@Two.example, c@one.example").unwrap(),
            vec!["one.example", "two.example"]
        );
        let two = b"From: a@victim.test\r\nFrom: a@victim.test\r\n\r\n";
        assert_eq!(authors_of(two), Err(AuthorError::SeveralFromFields(2)));
        let many: String = (0..20).map(|i| format!("a@d{i}.example,")).collect();
        assert!(matches!(domains(&many), Err(AuthorError::TooManyDomains(20))));
    }

    #[test]
    fn shown_domains() {
        let a = authors_of(
            b"From: =?utf-8?q?ceo=40victim.test?= <x@attacker.test>\r\nSender: s@list.example\r\nResent-From: r@attacker.test\r\n\r\n",
        )
        .unwrap();
        assert_eq!(a.domains, vec!["attacker.test"]);
        let shown: Vec<(&str, &str)> = a.shown.iter().map(|s| (s.domain.as_str(), s.source)).collect();
        assert_eq!(shown, vec![("victim.test", "display-name"), ("list.example", "sender")]);
        // A plain display name is not judged (analyze flags it).
        let a = authors_of(b"From: \"ceo@victim.test\" <x@attacker.test>\r\n\r\n").unwrap();
        assert!(a.shown.is_empty());
        assert_eq!(a.mailboxes[0].display_domains, vec!["victim.test"]);
    }

    /// Random From fields built from the pieces attacks are made of: no
    /// panic, and every author domain passes the second reading.
    #[test]
    fn random_from_fields_keep_the_second_reading() {
        let pieces = [
            "ceo", "@", " ", "\t", "\r\n ", ".", "victim", "test", "(c)", "(", ")", "<", ">", ",",
            "\"", "x:", ";", "=?utf-8?q?a=40b.c?=", "ｖ", "\u{3002}", "\u{200B}", "[1.2.3.4]",
            "\\", "xn--bcher-kva", "bücher", "-", "_", "\u{0}", "EXAMPLE", "com", "@@",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut judged = 0;
        for _ in 0..20_000 {
            let value: String = if next() % 2 == 0 {
                let n = 1 + next() % 12;
                (0..n)
                    .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                    .collect()
            } else {
                // An address with noise between its parts.
                let noise = ["", "", " ", "\t", "\r\n ", "(c)", "(a (b))"];
                let labels = ["victim", "test", "ｖｉｃｔｉｍ", "bücher", "xn--bcher-kva", "EXAMPLE", "com", "vic\u{200B}tim", "a-b"];
                let mut pick = |set: &[&'static str]| set[(next() % set.len() as u64) as usize];
                let parts = 1 + (pick(&["0", "1", "2"]).parse::<u8>().unwrap_or(0));
                let mut v = String::new();
                let angle = pick(&["", "<", "Name <", "\"q, r\" <"]);
                v += angle;
                v += pick(&noise);
                v += pick(&["ceo", "a.b", "\"x y\""]);
                v += pick(&noise);
                v += "@";
                for i in 0..parts {
                    if i > 0 {
                        v += pick(&noise);
                        v += pick(&[".", "\u{3002}", "．"]);
                    }
                    v += pick(&noise);
                    v += pick(&labels);
                }
                v += pick(&noise);
                if !angle.is_empty() {
                    v += ">";
                }
                v
            };
            let raw = format!("From: {value}\r\n\r\n");
            if let Ok(a) = authors_of(raw.as_bytes()) {
                for d in &a.domains {
                    judged += 1;
                    assert!(field_holds_domain(value.as_bytes(), d), "{value:?} gave {d}");
                    assert_eq!(author_domain(d).as_deref(), Ok(d.as_str()), "{d} is canonical");
                }
            }
        }
        assert!(judged > 500, "the generator reaches real addresses: {judged}");
    }

    #[test]
    fn the_header_block_ends_where_the_mta_ends_it() {
        // A line without a colon: Postfix starts the body there.
        assert_eq!(
            authors_of(b"Subject: x\r\ngarbage line\r\nFrom: ceo@victim.test\r\n\r\n"),
            Err(AuthorError::NoFrom)
        );
        // A first line that starts with white space.
        assert_eq!(
            authors_of(b" From: ceo@victim.test\r\n\r\n"),
            Err(AuthorError::NoFrom)
        );
        // The colon on a folded line: "From" alone is no field.
        assert_eq!(
            authors_of(b"From\r\n : ceo@victim.test\r\n\r\n"),
            Err(AuthorError::NoFrom)
        );
        // White space before the colon is the obsolete syntax (§4.5.3).
        assert_eq!(
            authors_of(b"From : ceo@victim.test\r\n\r\n").unwrap().domains,
            vec!["victim.test"]
        );
        assert_eq!(
            authors_of(b"fROM: ceo@victim.test\r\n\r\n").unwrap().domains,
            vec!["victim.test"]
        );
    }
}
