//! Findings and the report that groups them.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Mx,
    Ptr,
    Spf,
    Dkim,
    Dmarc,
    MtaSts,
    TlsRpt,
    Bimi,
    Blocklists,
    Smtp,
}

impl Category {
    pub fn title(self) -> &'static str {
        match self {
            Category::Mx => "MX",
            Category::Ptr => "Reverse DNS (PTR)",
            Category::Spf => "SPF",
            Category::Dkim => "DKIM",
            Category::Dmarc => "DMARC",
            Category::MtaSts => "MTA-STS",
            Category::TlsRpt => "TLS-RPT",
            Category::Bimi => "BIMI",
            Category::Blocklists => "Blocklists",
            Category::Smtp => "SMTP",
        }
    }

    pub const ALL: [Category; 10] = [
        Category::Mx,
        Category::Ptr,
        Category::Spf,
        Category::Dkim,
        Category::Dmarc,
        Category::MtaSts,
        Category::TlsRpt,
        Category::Bimi,
        Category::Blocklists,
        Category::Smtp,
    ];
}

/// error means "could not be checked" (a DNS failure), never "missing".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Info,
    Warn,
    Fail,
    Error,
}

/// A record to publish: what to paste into the DNS. Serialised with its
/// absolute zone-file line, which the web UI shows as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    pub name: String,
    pub rtype: String,
    pub value: String,
}

impl Serialize for Fix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Out<'a> {
            name: &'a str,
            #[serde(rename = "type")]
            rtype: &'a str,
            value: &'a str,
            zone_line: String,
        }
        Out {
            name: &self.name,
            rtype: &self.rtype,
            value: &self.value,
            zone_line: self.zone_line(),
        }
        .serialize(s)
    }
}

impl Fix {
    pub fn txt(name: &str, value: &str) -> Fix {
        Fix {
            name: name.to_string(),
            rtype: "TXT".into(),
            value: value.to_string(),
        }
    }

    /// The fix as a zone-file line, every TXT string at most 255 octets.
    pub fn zone_line(&self) -> String {
        if self.rtype == "TXT" {
            format!(
                "{}. IN TXT {}",
                self.name,
                netjes_dns::master::txt_strings(&self.value)
            )
        } else {
            format!("{}. IN {} {}", self.name, self.rtype, self.value)
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable across versions, for scripts: "spf.lookup-limit".
    pub id: String,
    pub category: Category,
    pub status: Status,
    pub message: String,
    /// What to do, in words, when the record alone does not say it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
}

impl Finding {
    pub fn new(category: Category, id: &str, status: Status, message: impl Into<String>) -> Self {
        Finding {
            id: id.to_string(),
            category,
            status,
            message: message.into(),
            advice: None,
            fix: None,
        }
    }

    pub fn advice(mut self, a: impl Into<String>) -> Self {
        self.advice = Some(a.into());
        self
    }

    pub fn fix(mut self, f: Fix) -> Self {
        self.fix = Some(f);
        self
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CategoryScore {
    pub category: Category,
    /// 0 to 10; `None` when nothing in the category could be checked.
    pub score: Option<f32>,
    pub worst: Status,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub domain: String,
    /// Where the domain came from when the user gave more than a name
    /// ("the domain of the address alice@example.com").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_note: Option<String>,
    /// False when the domain does not exist (NXDOMAIN).
    pub exists: bool,
    /// One sentence when there is no score: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headline: Option<String>,
    pub findings: Vec<Finding>,
    pub scores: Vec<CategoryScore>,
    /// 0 to 10 by the model in score.rs; null when the domain does not
    /// exist or nothing could be checked.
    pub score: Option<f32>,
    /// "Excellent", "Good", "Needs work" or "Poor".
    pub verdict: Option<&'static str>,
    /// False when some check could not run: the score is then at most
    /// what it says (an unchecked requirement counts as missing).
    pub complete: bool,
    /// The caps that held the score down, in words.
    pub capped_by: Vec<String>,
    /// The SPF include/redirect tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spf_tree: Option<crate::spf::SpfNode>,
}

impl Report {
    pub fn new(
        domain: &str,
        findings: Vec<Finding>,
        spf_tree: Option<crate::spf::SpfNode>,
    ) -> Report {
        let scored = crate::score::score(&findings);
        let mut scores = Vec::new();
        for c in Category::ALL {
            let fs: Vec<&Finding> = findings.iter().filter(|f| f.category == c).collect();
            if fs.is_empty() {
                continue;
            }
            // The category's own score: the same weights, on a scale where
            // 4 points lost is nothing left.
            let lost: f32 = fs
                .iter()
                .filter_map(|f| crate::score::cost(f))
                .map(|w| w.points)
                .sum();
            let score = (!scored.not_checked.contains(&c))
                .then(|| ((10.0 - 2.5 * lost).max(0.0) * 10.0).round() / 10.0);
            let worst = fs.iter().map(|f| f.status).max().unwrap_or(Status::Pass);
            scores.push(CategoryScore {
                category: c,
                score,
                worst,
            });
        }
        let headline = match scored.score {
            None => Some(format!(
                "nothing could be checked: {}",
                findings
                    .iter()
                    .find(|f| f.status == Status::Error)
                    .map(|f| f.message.as_str())
                    .unwrap_or("no answers")
            )),
            Some(_) => None,
        };
        Report {
            domain: domain.to_string(),
            input_note: None,
            exists: true,
            headline,
            findings,
            scores,
            score: scored.score,
            verdict: scored.verdict,
            complete: scored.complete,
            capped_by: scored.capped_by,
            spf_tree,
        }
    }

    /// A domain that does not exist: no score, one headline.
    pub fn nonexistent(domain: &str) -> Report {
        Report {
            domain: domain.to_string(),
            input_note: None,
            exists: false,
            headline: Some(format!(
                "{domain} does not exist (NXDOMAIN): check the spelling"
            )),
            findings: Vec::new(),
            scores: Vec::new(),
            score: None,
            verdict: None,
            complete: true,
            capped_by: Vec::new(),
            spf_tree: None,
        }
    }

    pub fn has(&self, s: Status) -> bool {
        self.findings.iter().any(|f| f.status == s)
    }
}

/// A finding's title in words, from its id (the id stays, in small print):
/// what the web UI shows in its Check column.
pub fn title(id: &str) -> String {
    const TITLES: &[(&str, &str)] = &[
        ("mx.missing", "MX records"),
        ("mx.null", "Null MX"),
        ("mx.null-mixed", "Null MX beside others"),
        ("mx.many", "Number of MX records"),
        ("mx.dns-error", "MX lookup"),
        ("spf.present", "SPF record"),
        ("spf.missing", "SPF record"),
        ("spf.pasted", "SPF record as written"),
        ("spf.syntax", "SPF syntax"),
        ("spf.multiple", "One SPF record"),
        ("spf.lookup-limit", "SPF DNS lookups (limit 10)"),
        ("spf.void-limit", "SPF void lookups (limit 2)"),
        ("spf.all", "SPF all"),
        ("spf.after-all", "SPF terms after all"),
        ("spf.ptr", "SPF ptr mechanism"),
        ("spf.size", "SPF record size"),
        ("spf.ip", "Sending address allowed"),
        ("spf.include-error", "SPF include"),
        ("spf.dns-error", "SPF lookup"),
        ("dkim.none-found", "DKIM keys at the usual selectors"),
        ("dmarc.present", "DMARC record"),
        ("dmarc.inherited", "DMARC record (inherited)"),
        ("dmarc.missing", "DMARC record"),
        ("dmarc.pasted", "DMARC record as written"),
        ("dmarc.syntax", "DMARC syntax"),
        ("dmarc.multiple", "One DMARC record"),
        ("dmarc.policy", "DMARC policy"),
        ("dmarc.testing", "DMARC testing flag"),
        ("dmarc.tags", "DMARC tags"),
        ("dmarc.removed-tag", "Tags RFC 9989 removed"),
        ("dmarc.unknown-tag", "Unknown DMARC tag"),
        ("dmarc.no-rua", "Aggregate reports (rua)"),
        ("dmarc.rua-syntax", "Aggregate report address"),
        ("dmarc.rua", "Aggregate report address"),
        ("dmarc.ruf", "Failure report address"),
        ("dmarc.rua-external", "External report address allowed"),
        ("dmarc.ruf-external", "External report address allowed"),
        ("dmarc.dns-error", "DMARC lookup"),
        ("mta-sts.record", "MTA-STS record"),
        ("mta-sts.policy", "MTA-STS policy"),
        ("mta-sts.mx", "MTA-STS covers every MX"),
        ("mta-sts.content-type", "MTA-STS policy type"),
        ("tls-rpt.record", "TLS-RPT record"),
        ("bimi.record", "BIMI record"),
    ];
    if let Some((_, t)) = TITLES.iter().find(|(i, _)| *i == id) {
        return t.to_string();
    }
    // The ids with a name in them: mx.host.NAME, ptr.IP, dkim.SELECTOR,
    // blocklist.LIST.WHAT, smtp.HOST.
    let rest = |p: &str| id.strip_prefix(p).unwrap_or(id).to_string();
    match id.split('.').next().unwrap_or("") {
        "mx" if id.ends_with(".private") => format!("MX {} address", rest("mx.host.").trim_end_matches(".private")),
        "mx" if id.ends_with(".cname") => format!("MX {} not an alias", rest("mx.host.").trim_end_matches(".cname")),
        "mx" => format!("MX host {}", rest("mx.host.")),
        "ptr" => format!("Reverse DNS of {}", rest("ptr.")),
        "dkim" => format!("DKIM key {}", rest("dkim.")),
        "blocklist" => format!("Blocklist {}", rest("blocklist.")),
        "smtp" => format!("SMTP {}", rest("smtp.")),
        _ => id.to_string(),
    }
}
