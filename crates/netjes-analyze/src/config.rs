//! The analyzer's configuration file (TOML): penalties by finding id, the
//! blocklists, and SpamAssassin. Unknown keys are errors, and every error
//! is reported at once. `samples/analyze.toml` is the commented example.

use crate::penalties::Penalties;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    penalties: BTreeMap<String, f32>,
    #[serde(default)]
    blocklists: RawBlocklists,
    spamd: Option<RawSpamd>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlocklists {
    ip: Option<Vec<String>>,
    domain: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpamd {
    address: String,
    timeout_seconds: Option<f64>,
}

/// The validated configuration.
#[derive(Debug, Clone, Default)]
pub struct AnalyzeConfig {
    pub penalties: Penalties,
    /// `None`: the defaults; empty: ask none.
    pub ip_lists: Option<Vec<String>>,
    pub domain_lists: Option<Vec<String>>,
    pub spamd: Option<(String, Duration)>,
}

/// spamd usually answers in well under a second; a rule set that calls
/// out to the network can take longer.
pub const DEFAULT_SPAMD_TIMEOUT: Duration = Duration::from_secs(20);

impl AnalyzeConfig {
    pub fn parse(text: &str) -> Result<AnalyzeConfig, Vec<String>> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
        let mut errors = Vec::new();
        let penalties = Penalties::with_overrides(&raw.penalties).unwrap_or_else(|e| {
            errors.extend(e);
            Penalties::default()
        });
        for (what, lists) in [
            ("ip", &raw.blocklists.ip),
            ("domain", &raw.blocklists.domain),
        ] {
            for l in lists.iter().flatten() {
                if !netjes_dns::is_valid_query_name(l) || !l.contains('.') {
                    errors.push(format!("blocklists.{what}: {l:?} is not a DNS zone name"));
                }
            }
        }
        let spamd = match raw.spamd {
            None => None,
            Some(s) => {
                if s.address
                    .rsplit_once(':')
                    .is_none_or(|(_, p)| p.parse::<u16>().is_err())
                {
                    errors.push(format!("spamd.address: {:?} is not HOST:PORT", s.address));
                }
                let t = s
                    .timeout_seconds
                    .unwrap_or(DEFAULT_SPAMD_TIMEOUT.as_secs_f64());
                if !(t > 0.0 && t <= 300.0) {
                    errors.push(format!(
                        "spamd.timeout_seconds: {t} must be between 0 and 300"
                    ));
                }
                Some((s.address, Duration::from_secs_f64(t.clamp(0.001, 300.0))))
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(AnalyzeConfig {
            penalties,
            ip_lists: raw.blocklists.ip,
            domain_lists: raw.blocklists.domain,
            spamd,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_parses_and_bad_keys_are_all_reported() {
        let sample = include_str!("../../../samples/analyze.toml");
        let c = AnalyzeConfig::parse(sample).unwrap();
        assert_eq!(c.penalties.penalty("content.http-link"), 0.1);
        assert!(c.spamd.is_some());
        let e = AnalyzeConfig::parse("[penalties]\n\"x.y\" = 1\n\"format.no-date\" = 20\n[blocklists]\nip = [\"not a list\"]\n").unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(AnalyzeConfig::parse("colour = 1\n").is_err());
    }
}
