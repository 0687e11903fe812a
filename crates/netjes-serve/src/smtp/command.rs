//! SMTP commands (RFC 5321 §4.1) and the one question the inbox asks of a
//! recipient: is it an open test address of ours? Free of IO.
//!
//! The recipient rule is strict on purpose: only `<id@test-domain>` with a
//! plain id passes. Source routes (`<@a,@b:u@d>`, §4.1.1.3 says to ignore
//! them; relays have been abused through them), the percent hack
//! (`u%other@d`), bang paths (`other!u@d`) and quoted local parts never
//! name a test, so they all get 550, and nothing is relayed.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    /// The reverse path ("" for the null sender) and the SIZE= parameter.
    Mail {
        from: String,
        size: Option<u64>,
    },
    Rcpt(String),
    Data,
    Rset,
    Noop,
    Quit,
    StartTls,
    /// VRFY and EXPN: answered 252 without telling anything.
    Vrfy,
    Unknown(String),
    /// A known verb with arguments we cannot read.
    Syntax(&'static str),
}

/// The path between `<` and `>` after `FROM:` or `TO:`, and what follows.
fn path(arg: &str) -> Option<(&str, &str)> {
    let arg = arg.trim_start();
    let rest = arg.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some((&rest[..end], rest[end + 1..].trim()))
}

pub fn parse(line: &str) -> Command {
    let line = line.trim_end_matches(['\r', '\n']);
    let (verb, arg) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let upper = verb.to_ascii_uppercase();
    let arg_upper = arg.to_ascii_uppercase();
    match upper.as_str() {
        "HELO" | "EHLO" => {
            let name = arg.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Command::Syntax("501 5.5.4 give your host name");
            }
            if upper == "HELO" {
                Command::Helo(name.into())
            } else {
                Command::Ehlo(name.into())
            }
        }
        "MAIL" if arg_upper.starts_with("FROM:") => match path(&arg[5..]) {
            Some((from, params)) => {
                let mut size = None;
                for p in params.split_whitespace() {
                    if let Some(v) = p.to_ascii_uppercase().strip_prefix("SIZE=") {
                        match v.parse() {
                            Ok(n) => size = Some(n),
                            Err(_) => return Command::Syntax("501 5.5.4 SIZE= takes a number"),
                        }
                    }
                }
                Command::Mail {
                    from: from.into(),
                    size,
                }
            }
            None => Command::Syntax("501 5.1.7 MAIL FROM:<address>"),
        },
        "RCPT" if arg_upper.starts_with("TO:") => match path(&arg[3..]) {
            Some((to, _)) => Command::Rcpt(to.into()),
            None => Command::Syntax("501 5.1.3 RCPT TO:<address>"),
        },
        "MAIL" | "RCPT" => Command::Syntax("501 5.5.4 MAIL FROM:<address> or RCPT TO:<address>"),
        "DATA" => Command::Data,
        "RSET" => Command::Rset,
        "NOOP" => Command::Noop,
        "QUIT" => Command::Quit,
        "STARTTLS" => Command::StartTls,
        "VRFY" | "EXPN" => Command::Vrfy,
        _ => Command::Unknown(verb.chars().take(16).collect()),
    }
}

/// Why a recipient is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not our test domain, or a routing trick: 550 5.7.1, no relaying.
    Relay,
    /// Our domain, but no such test id (or not a plain one): 550 5.1.1.
    NoSuchTest,
}

/// The test id a recipient names, when it is `<id@test_domain>` with an
/// id of letters and digits only.
pub fn test_id(rcpt: &str, test_domain: &str) -> Result<String, Refusal> {
    if rcpt.starts_with('@')
        || rcpt.contains(['!', '%', '"', '\\', ',', ':'])
        || rcpt.matches('@').count() != 1
    {
        return Err(Refusal::Relay);
    }
    let (local, domain) = rcpt.rsplit_once('@').ok_or(Refusal::Relay)?;
    if !domain
        .trim_end_matches('.')
        .eq_ignore_ascii_case(test_domain)
    {
        return Err(Refusal::Relay);
    }
    if local.is_empty() || local.len() > 64 || !local.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Refusal::NoSuchTest);
    }
    Ok(local.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse("EHLO client.example\r\n"),
            Command::Ehlo("client.example".into())
        );
        assert_eq!(parse("helo x"), Command::Helo("x".into()));
        assert!(matches!(parse("EHLO"), Command::Syntax(_)));
        assert_eq!(
            parse("MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME"),
            Command::Mail {
                from: "a@b.example".into(),
                size: Some(1000)
            }
        );
        assert_eq!(
            parse("mail from:<>"),
            Command::Mail {
                from: "".into(),
                size: None
            }
        );
        assert!(matches!(parse("MAIL FROM:a@b"), Command::Syntax(_)));
        assert!(matches!(
            parse("MAIL FROM:<a@b> SIZE=x"),
            Command::Syntax(_)
        ));
        assert_eq!(
            parse("RCPT TO:<x@t.example>"),
            Command::Rcpt("x@t.example".into())
        );
        assert_eq!(
            parse("RCPT TO: <x@t.example>"),
            Command::Rcpt("x@t.example".into())
        );
        assert_eq!(parse("BDAT 10"), Command::Unknown("BDAT".into()));
        assert_eq!(parse("STARTTLS"), Command::StartTls);
    }

    #[test]
    fn only_plain_test_addresses_pass() {
        let d = "test.example";
        assert_eq!(test_id("AbC123@Test.Example", d), Ok("abc123".into()));
        assert_eq!(test_id("abc@test.example.", d), Ok("abc".into()));
        assert_eq!(test_id("abc@other.example", d), Err(Refusal::Relay));
        assert_eq!(
            test_id("@test.example:abc@other.example", d),
            Err(Refusal::Relay)
        );
        assert_eq!(test_id("@a,@b:abc@test.example", d), Err(Refusal::Relay));
        assert_eq!(
            test_id("abc%other.example@test.example", d),
            Err(Refusal::Relay)
        );
        assert_eq!(
            test_id("other.example!abc@test.example", d),
            Err(Refusal::Relay)
        );
        assert_eq!(
            test_id("\"abc@other.example\"@test.example", d),
            Err(Refusal::Relay)
        );
        assert_eq!(
            test_id("abc@other.example@test.example", d),
            Err(Refusal::Relay)
        );
        assert_eq!(test_id("a.b@test.example", d), Err(Refusal::NoSuchTest));
        assert_eq!(test_id("postmaster", d), Err(Refusal::Relay));
    }
}
