//! What the message test reports: findings with a penalty, in sections as
//! mail-tester groups them. Every finding's section and default penalty
//! come from the one table in [`crate::penalties`].

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    Authentication,
    Reputation,
    Format,
    BulkSender,
    Content,
    Received,
    Spamassassin,
}

impl Section {
    pub const ALL: [Section; 7] = [
        Section::Authentication,
        Section::Reputation,
        Section::Format,
        Section::BulkSender,
        Section::Content,
        Section::Received,
        Section::Spamassassin,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Section::Authentication => "Authentication (SPF, DKIM, DMARC, reverse DNS)",
            Section::Reputation => "Reputation (blocklists)",
            Section::Format => "Message format (RFC 5322)",
            Section::BulkSender => "Bulk-sender rules (Gmail, Yahoo, Outlook)",
            Section::Content => "Content and links",
            Section::Received => "Received chain",
            Section::Spamassassin => "SpamAssassin",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable: "format.no-date".
    pub id: &'static str,
    pub section: Section,
    /// Points off the mark out of 10; 0 for information.
    pub penalty: f32,
    pub explanation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    /// A finding with the section and default penalty the table gives `id`.
    pub fn new(id: &'static str, explanation: impl Into<String>) -> Self {
        let rule = crate::penalties::rule(id);
        Finding {
            id,
            section: rule.section,
            penalty: rule.penalty,
            explanation: explanation.into(),
            fix: None,
        }
    }

    pub fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = Some(f.into());
        self
    }
}
