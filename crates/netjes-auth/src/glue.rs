//! How mail-auth is driven by netjes's DNS.
//!
//! mail-auth consults its caches before it would ask its own resolver. netjes
//! looks up every record that a verification will need through
//! [`netjes_dns::Resolver`] first, fills a per-message cache with the parsed
//! records and with errors in mail-auth's terms, and only then calls
//! mail-auth. mail-auth's own resolver points at no name server at all, so a
//! record we did not prefetch shows up as a temperror in tests, never as a
//! query to public DNS.

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
use mail_auth::{MessageAuthenticator, ResolverCache, Txt};
use netjes_dns::{DnsError, Resolver, ResolverExt};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, OnceLock};

/// The MessageAuthenticator shared by every verification; it never resolves.
pub(crate) fn authenticator() -> &'static MessageAuthenticator {
    static A: OnceLock<MessageAuthenticator> = OnceLock::new();
    A.get_or_init(|| {
        let mut opts = ResolverOpts::default();
        opts.timeout = std::time::Duration::from_millis(1);
        opts.attempts = 0;
        MessageAuthenticator::new(ResolverConfig::from_name_servers(Vec::new()), opts)
            .expect("a resolver without name servers can always be built")
    })
}

/// A per-message TXT cache, filled before mail-auth runs.
#[derive(Default)]
pub(crate) struct Prefetched {
    txt: Mutex<HashMap<Box<str>, Txt>>,
}

impl ResolverCache<Box<str>, Txt> for Prefetched {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.txt.lock().unwrap().get(name) {
            Some(v) => Some(v.clone()),
            None => {
                // mail-auth asked for a record we did not fetch: it will get
                // a temperror from its resolver, which has no name servers.
                tracing::warn!("mail-auth looked up a record netjes did not prefetch");
                None
            }
        }
    }

    fn remove<Q>(&self, _name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _key: Box<str>, _value: Txt, _valid_until: std::time::Instant) {}
}

impl Prefetched {
    fn put(&self, name: &str, value: Txt) {
        self.txt
            .lock()
            .unwrap()
            .insert(name.to_fqdn().into_owned().into_boxed_str(), value);
    }

    /// Looks up a DKIM key record through netjes's resolver and stores it as
    /// mail-auth will ask for it. Returns the raw TXT records as well.
    pub(crate) async fn domain_key(
        &self,
        dns: &dyn Resolver,
        name: &str,
    ) -> Result<Vec<Vec<u8>>, DnsError> {
        let res = dns.txt(name).await;
        let value = match &res {
            Ok(txts) => {
                let mut parsed: Txt = Txt::Error(mail_auth::Error::Dns(
                    mail_auth::DnsError::InvalidRecordType,
                ));
                for t in txts {
                    match DomainKey::parse(t) {
                        Ok(k) => {
                            parsed = k.into();
                            break;
                        }
                        Err(e) => parsed = Txt::Error(e),
                    }
                }
                parsed
            }
            Err(e) => Txt::Error(to_mail_auth_error(e)),
        };
        self.put(name, value);
        res
    }
}

/// The contract of netjes-dns in mail-auth's terms: temporary failures become
/// `Resolver` errors (temperror), absence becomes `RecordNotFound`.
pub(crate) fn to_mail_auth_error(e: &DnsError) -> mail_auth::Error {
    use mail_auth::hickory_resolver::proto::op::ResponseCode;
    match e {
        DnsError::Temporary { reason, .. } => {
            mail_auth::Error::Dns(mail_auth::DnsError::Resolver(reason.clone()))
        }
        DnsError::NxDomain { .. } | DnsError::InvalidName { .. } => {
            mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(ResponseCode::NXDomain))
        }
        DnsError::NoData { .. } => {
            mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(ResponseCode::NoError))
        }
    }
}
