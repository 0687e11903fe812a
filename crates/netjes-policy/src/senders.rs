//! Which domains an application may send for. A provider that sends for
//! its customers gives each application a SASL login and assigns it the
//! customers' signing domains (netjes serve); mail submitted with that
//! login in any other domain's name, or a domain not yet switched on, is
//! refused with a 5xx that names the domain. Logins assigned to no domain
//! (the MTA's mailbox users) are not restricted here.

/// What the rights source says for a login and a sender domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Right {
    Allowed,
    NotAnApplication,
    NotAssigned,
    Inactive,
    UnknownDomain,
}

/// Where the rights come from (serve's store, in the binary). An `Err` is
/// a store failure: the request gets `store_failure`, never a reject.
pub trait SenderRights: Send + Sync {
    fn right(&self, login: &str, domain: &str) -> Result<Right, String>;
}

/// The refusal for a right that is not a yes, or None to go on.
pub fn refusal(right: Right, login: &str, sender: &str, domain: &str) -> Option<String> {
    let why = match right {
        Right::Allowed | Right::NotAnApplication => return None,
        Right::NotAssigned => format!("{login} may not send for {domain}"),
        Right::Inactive => format!("{domain} is not switched on for sending yet (publish its DKIM record and activate it)"),
        Right::UnknownDomain => format!("{domain} is not a domain {login} sends for"),
    };
    Some(format!("553 5.7.1 <{sender}>: {why}"))
}
