//! What the message test reports: findings with a penalty, in sections as
//! mail-tester groups them.

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
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable: "format.missing-date".
    pub id: &'static str,
    pub section: Section,
    /// Points off the mark out of 10; 0 for information.
    pub penalty: f32,
    pub explanation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Finding {
    pub fn new(id: &'static str, section: Section, penalty: f32, explanation: impl Into<String>) -> Self {
        Finding { id, section, penalty, explanation: explanation.into(), fix: None }
    }

    pub fn fix(mut self, f: impl Into<String>) -> Self {
        self.fix = Some(f.into());
        self
    }
}
