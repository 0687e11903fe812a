//! Which domains an application may send for. A provider that sends for
//! its customers gives each application a SASL login and assigns it the
//! customers' signing domains (netjes serve); mail submitted with that
//! login in any other domain's name, or a domain not yet switched on, is
//! refused with a 5xx that names the domain. Logins assigned to no domain
//! (the MTA's mailbox users) are not restricted here.

/// Where the rights come from (serve's store, in the binary).
pub trait SenderRights: Send + Sync {
    /// Why `login` may not send as `domain`, or None when it may. An `Err`
    /// is a store failure: the request gets `store_failure`, never a
    /// reject.
    fn refusal(&self, login: &str, domain: &str) -> Result<Option<String>, String>;
    /// Why our mail from `domain` may not go to `recipient` (it is on the
    /// domain's suppression list), or None.
    fn suppressed(&self, _domain: &str, _recipient: &str) -> Result<Option<String>, String> {
        Ok(None)
    }
}

/// The reply for a refusal.
pub fn reply(sender: &str, why: &str) -> String {
    format!("553 5.7.1 <{sender}>: {why}")
}
