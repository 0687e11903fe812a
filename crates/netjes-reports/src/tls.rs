//! TLS reports (RFC 8460 §4): JSON, read leniently (a missing contact,
//! a policy without mx-host, a failure without an address are seen in the
//! wild), with the fields that matter required.

use crate::ReportError;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub result_type: String,
    pub sending_mta_ip: Option<String>,
    pub receiving_mx_hostname: Option<String>,
    pub receiving_ip: Option<String>,
    pub failed_sessions: u64,
    pub reason_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    /// "sts", "tlsa" or "no-policy-found".
    pub policy_type: String,
    pub policy_domain: String,
    pub mx_hosts: Vec<String>,
    pub successful_sessions: u64,
    pub failed_sessions: u64,
    pub failures: Vec<Failure>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TlsReport {
    pub organization: String,
    pub report_id: String,
    pub contact: Option<String>,
    /// RFC 3339, as written.
    pub start: String,
    pub end: String,
    pub policies: Vec<Policy>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// The mx-host field: a string or a list of them (both are seen).
fn hosts(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|x| x.as_str().map(String::from)).collect(),
        _ => vec![],
    }
}

pub fn parse(bytes: &[u8]) -> Result<TlsReport, ReportError> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| ReportError::Json(e.to_string()))?;
    let range = v.get("date-range").ok_or(ReportError::Missing("date-range"))?;
    let mut policies = Vec::new();
    for p in v.get("policies").and_then(Value::as_array).ok_or(ReportError::Missing("policies"))? {
        let pol = p.get("policy").ok_or(ReportError::Missing("policies/policy"))?;
        let summary = p.get("summary").ok_or(ReportError::Missing("policies/summary"))?;
        let failures = p
            .get("failure-details")
            .and_then(Value::as_array)
            .map(|fs| {
                fs.iter()
                    .map(|f| Failure {
                        result_type: text(f, "result-type").unwrap_or_else(|| "unknown".into()).to_ascii_lowercase(),
                        sending_mta_ip: text(f, "sending-mta-ip"),
                        receiving_mx_hostname: text(f, "receiving-mx-hostname"),
                        receiving_ip: text(f, "receiving-ip"),
                        failed_sessions: count(f, "failed-session-count"),
                        reason_code: text(f, "failure-reason-code"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        policies.push(Policy {
            policy_type: text(pol, "policy-type").ok_or(ReportError::Missing("policy-type"))?.to_ascii_lowercase(),
            // Google omits it for no-policy-found; the report still
            // counts sessions.
            policy_domain: text(pol, "policy-domain")
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_ascii_lowercase(),
            mx_hosts: hosts(pol.get("mx-host")),
            successful_sessions: count(summary, "total-successful-session-count"),
            failed_sessions: count(summary, "total-failure-session-count"),
            failures,
        });
    }
    Ok(TlsReport {
        organization: text(&v, "organization-name").ok_or(ReportError::Missing("organization-name"))?,
        report_id: text(&v, "report-id").ok_or(ReportError::Missing("report-id"))?,
        contact: text(&v, "contact-info"),
        start: text(range, "start-datetime").ok_or(ReportError::Missing("start-datetime"))?,
        end: text(range, "end-datetime").ok_or(ReportError::Missing("end-datetime"))?,
        policies,
    })
}
