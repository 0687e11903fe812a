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

/// A record to publish: what to paste into the DNS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fix {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub value: String,
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
    pub findings: Vec<Finding>,
    pub scores: Vec<CategoryScore>,
    /// 0 to 10: the mean of the categories.
    pub score: f32,
    /// The SPF include/redirect tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spf_tree: Option<crate::spf::SpfNode>,
}

/// What a finding costs its category, out of 10.
fn penalty(s: Status) -> f32 {
    match s {
        Status::Pass | Status::Info => 0.0,
        Status::Warn => 2.0,
        Status::Fail => 6.0,
        Status::Error => 0.0,
    }
}

impl Report {
    pub fn new(
        domain: &str,
        findings: Vec<Finding>,
        spf_tree: Option<crate::spf::SpfNode>,
    ) -> Report {
        let mut scores = Vec::new();
        for c in Category::ALL {
            let fs: Vec<&Finding> = findings.iter().filter(|f| f.category == c).collect();
            if fs.is_empty() {
                continue;
            }
            let checked = fs.iter().any(|f| f.status != Status::Error);
            let score = checked
                .then(|| (10.0 - fs.iter().map(|f| penalty(f.status)).sum::<f32>()).max(0.0));
            let worst = fs.iter().map(|f| f.status).max().unwrap_or(Status::Pass);
            scores.push(CategoryScore {
                category: c,
                score,
                worst,
            });
        }
        // The overall score is the mean of the categories that could be checked.
        let known: Vec<f32> = scores.iter().filter_map(|s| s.score).collect();
        let score = if known.is_empty() {
            0.0
        } else {
            known.iter().sum::<f32>() / known.len() as f32
        };
        Report {
            domain: domain.to_string(),
            findings,
            scores,
            score: (score * 10.0).round() / 10.0,
            spf_tree,
        }
    }

    pub fn has(&self, s: Status) -> bool {
        self.findings.iter().any(|f| f.status == s)
    }
}
