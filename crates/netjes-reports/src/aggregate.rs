//! DMARC aggregate reports: RFC 7489 Appendix C and RFC 9990, with or
//! without a namespace or its prefix.
//!
//! Real reports are messy, and this reader takes what they send:
//! upper- and mixed-case values (`Pass`), SPF results the schema lacks
//! (`unknown`, `error`), an empty `<reason>`, a stray `<xs:schema>` before
//! `<feedback>`, windows-1252 and invalid UTF-8, float timestamps
//! (`1337270400.0`, OpenDMARC 2012). What it refuses: a DOCTYPE (so no
//! entity can expand), any entity but the five predefined and character
//! references, more than 64 levels of nesting, more records than the
//! limit, and a report without its reporter, id, dates or domain.

use crate::{Limits, ReportError};
use quick_xml::events::Event;
use serde::Serialize;
use std::net::IpAddr;
use std::time::Instant;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PolicyPublished {
    pub domain: String,
    pub adkim: Option<String>,
    pub aspf: Option<String>,
    pub p: Option<String>,
    pub sp: Option<String>,
    pub np: Option<String>,
    pub pct: Option<String>,
    pub fo: Option<String>,
    pub testing: Option<String>,
    pub discovery_method: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reason {
    pub kind: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DkimAuth {
    pub domain: String,
    pub selector: Option<String>,
    pub result: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpfAuth {
    pub domain: String,
    pub scope: Option<String>,
    pub result: String,
}

/// One row: a source address and what happened to its messages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub source_ip: IpAddr,
    pub count: u64,
    pub disposition: String,
    /// DMARC's own view of DKIM and SPF: aligned pass or fail.
    pub dkim: String,
    pub spf: String,
    pub reasons: Vec<Reason>,
    pub header_from: String,
    pub envelope_from: Option<String>,
    pub envelope_to: Option<String>,
    pub dkim_results: Vec<DkimAuth>,
    pub spf_results: Vec<SpfAuth>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AggregateReport {
    /// "rfc9990" (the dmarc-2.0 namespace) or "rfc7489".
    pub format: &'static str,
    pub version: Option<String>,
    pub org_name: String,
    pub email: Option<String>,
    pub report_id: String,
    pub begin: i64,
    pub end: i64,
    pub errors: Vec<String>,
    pub policy: PolicyPublished,
    pub records: Vec<Record>,
}

impl AggregateReport {
    /// Messages in all rows.
    pub fn messages(&self) -> u64 {
        self.records.iter().map(|r| r.count).sum()
    }
}

/// The text of the report: UTF-8, or what its declaration names
/// (windows-1252 and Latin-1 are seen), or UTF-8 with the bad octets
/// replaced, so one bad byte in a comment does not lose the report.
fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_ascii_lowercase();
    let declared = head
        .split("encoding=")
        .nth(1)
        .and_then(|r| r.trim_start_matches(['"', '\'']).split(['"', '\'']).next())
        .map(str::to_string);
    if let Some(enc) = declared.filter(|e| e != "utf-8" && e != "us-ascii") {
        if let Some(dec) = mail_parser::decoders::charsets::map::charset_decoder(enc.as_bytes()) {
            return dec(bytes);
        }
    }
    String::from_utf8_lossy(bytes).into_owned()
}

/// A date as the reports write it: seconds, or seconds with a fraction.
fn timestamp(s: &str) -> Result<i64, ReportError> {
    let t = s.trim();
    t.parse::<i64>()
        .ok()
        .or_else(|| t.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| f as i64))
        .ok_or_else(|| ReportError::Invalid(format!("the date {t:?}")))
}

#[derive(Default)]
struct RecordBuilder {
    source_ip: Option<String>,
    count: Option<String>,
    disposition: String,
    dkim: String,
    spf: String,
    reasons: Vec<Reason>,
    header_from: String,
    envelope_from: Option<String>,
    envelope_to: Option<String>,
    dkim_results: Vec<DkimAuth>,
    spf_results: Vec<SpfAuth>,
}

impl RecordBuilder {
    fn build(self) -> Result<Record, ReportError> {
        let ip = self.source_ip.ok_or(ReportError::Missing("record/row/source_ip"))?;
        let source_ip = ip
            .trim()
            .parse()
            .map_err(|_| ReportError::Invalid(format!("the source address {ip:?}")))?;
        let c = self.count.ok_or(ReportError::Missing("record/row/count"))?;
        let count = c
            .trim()
            .parse()
            .map_err(|_| ReportError::Invalid(format!("the count {c:?}")))?;
        Ok(Record {
            source_ip,
            count,
            disposition: self.disposition,
            dkim: self.dkim,
            spf: self.spf,
            reasons: self.reasons,
            header_from: self.header_from,
            envelope_from: self.envelope_from,
            envelope_to: self.envelope_to,
            dkim_results: self.dkim_results,
            spf_results: self.spf_results,
        })
    }
}

#[derive(Default)]
struct Builder {
    rfc9990: bool,
    version: Option<String>,
    org_name: Option<String>,
    email: Option<String>,
    report_id: Option<String>,
    begin: Option<String>,
    end: Option<String>,
    errors: Vec<String>,
    policy: PolicyPublished,
    records: Vec<Record>,
    record: Option<RecordBuilder>,
}

/// A value as reports should have written it: trimmed, lower case.
fn word(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

fn some(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

impl Builder {
    /// An element opens, at `rel` (the path below feedback).
    fn open(&mut self, rel: &[String]) {
        let r: Vec<&str> = rel.iter().map(String::as_str).collect();
        match r.as_slice() {
            ["record"] => self.record = Some(RecordBuilder::default()),
            ["record", "row", "policy_evaluated", "reason"] => {
                if let Some(rec) = &mut self.record {
                    rec.reasons.push(Reason::default());
                }
            }
            ["record", "auth_results", "dkim"] => {
                if let Some(rec) = &mut self.record {
                    rec.dkim_results.push(DkimAuth::default());
                }
            }
            ["record", "auth_results", "spf"] => {
                if let Some(rec) = &mut self.record {
                    rec.spf_results.push(SpfAuth::default());
                }
            }
            _ => {}
        }
    }

    /// An element closes with its text.
    fn close(&mut self, rel: &[String], text: &str, limits: &Limits) -> Result<(), ReportError> {
        let r: Vec<&str> = rel.iter().map(String::as_str).collect();
        let p = &mut self.policy;
        match r.as_slice() {
            ["version"] => self.version = some(text),
            ["report_metadata", "org_name"] => self.org_name = some(text),
            ["report_metadata", "email"] => self.email = some(text),
            ["report_metadata", "report_id"] => self.report_id = some(text),
            ["report_metadata", "error"] => self.errors.extend(some(text)),
            ["report_metadata", "date_range", "begin"] => self.begin = some(text),
            ["report_metadata", "date_range", "end"] => self.end = some(text),
            ["policy_published", "domain"] => p.domain = word(text).trim_end_matches('.').to_string(),
            ["policy_published", "adkim"] => p.adkim = some(&word(text)),
            ["policy_published", "aspf"] => p.aspf = some(&word(text)),
            ["policy_published", "p"] => p.p = some(&word(text)),
            ["policy_published", "sp"] => p.sp = some(&word(text)),
            ["policy_published", "np"] => p.np = some(&word(text)),
            ["policy_published", "pct"] => p.pct = some(text),
            ["policy_published", "fo"] => p.fo = some(text),
            ["policy_published", "testing"] => p.testing = some(&word(text)),
            ["policy_published", "discovery_method"] => p.discovery_method = some(&word(text)),
            ["record"] => {
                if self.records.len() >= limits.max_records {
                    return Err(ReportError::TooManyRecords(limits.max_records));
                }
                if let Some(rec) = self.record.take() {
                    self.records.push(rec.build()?);
                }
            }
            [ "record", rest @ .. ] => {
                if let Some(rec) = &mut self.record {
                    record_field(rec, rest, text);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn build(self) -> Result<AggregateReport, ReportError> {
        let begin = timestamp(&self.begin.ok_or(ReportError::Missing("date_range/begin"))?)?;
        let end = timestamp(&self.end.ok_or(ReportError::Missing("date_range/end"))?)?;
        if self.policy.domain.is_empty() {
            return Err(ReportError::Missing("policy_published/domain"));
        }
        Ok(AggregateReport {
            format: if self.rfc9990 { "rfc9990" } else { "rfc7489" },
            version: self.version,
            // An empty org_name is seen: the reporter is then the domain
            // of its address, as parsedmarc names it.
            org_name: self
                .org_name
                .or_else(|| {
                    self.email
                        .as_deref()
                        .and_then(|e| e.rsplit_once('@'))
                        .map(|(_, d)| d.to_ascii_lowercase())
                })
                .ok_or(ReportError::Missing("report_metadata/org_name"))?,
            email: self.email,
            report_id: self.report_id.ok_or(ReportError::Missing("report_metadata/report_id"))?,
            begin,
            end,
            errors: self.errors,
            policy: self.policy,
            records: self.records,
        })
    }
}

fn record_field(rec: &mut RecordBuilder, r: &[&str], text: &str) {
    match r {
        ["row", "source_ip"] => rec.source_ip = some(text),
        ["row", "count"] => rec.count = some(text),
        ["row", "policy_evaluated", "disposition"] => rec.disposition = word(text),
        ["row", "policy_evaluated", "dkim"] => rec.dkim = word(text),
        ["row", "policy_evaluated", "spf"] => rec.spf = word(text),
        ["row", "policy_evaluated", "reason", "type"] => {
            if let Some(x) = rec.reasons.last_mut() {
                x.kind = word(text);
            }
        }
        ["row", "policy_evaluated", "reason", "comment"] => {
            if let Some(x) = rec.reasons.last_mut() {
                x.comment = some(text);
            }
        }
        ["identifiers", "header_from"] => rec.header_from = word(text),
        ["identifiers", "envelope_from"] => rec.envelope_from = some(&word(text)),
        ["identifiers", "envelope_to"] => rec.envelope_to = some(&word(text)),
        ["auth_results", "dkim", field] => {
            if let Some(d) = rec.dkim_results.last_mut() {
                match *field {
                    "domain" => d.domain = word(text),
                    "selector" => d.selector = some(text),
                    "result" => d.result = word(text),
                    _ => {}
                }
            }
        }
        ["auth_results", "spf", field] => {
            if let Some(s) = rec.spf_results.last_mut() {
                match *field {
                    "domain" => s.domain = word(text),
                    "scope" => s.scope = some(&word(text)),
                    "result" => s.result = word(text),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// The local name of a tag, lower case, its namespace prefix gone.
fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_ascii_lowercase()
}

/// The value of one of the five predefined entities or a character
/// reference; anything else is refused (no entity of the document's own
/// can exist without a DOCTYPE, and we refuse those).
fn entity(name: &str) -> Result<char, ReportError> {
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => {
            let code = if let Some(h) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                u32::from_str_radix(h, 16).ok()
            } else {
                name.strip_prefix('#').and_then(|d| d.parse().ok())
            };
            return code
                .and_then(char::from_u32)
                .ok_or_else(|| ReportError::Xml(format!("the entity &{name}; is not allowed")));
        }
    };
    Ok(c)
}

const MAX_DEPTH: usize = 64;

/// Parses one aggregate report.
pub fn parse(bytes: &[u8], limits: &Limits) -> Result<AggregateReport, ReportError> {
    let started = Instant::now();
    let text = decode(bytes);
    if text.trim().is_empty() {
        return Err(ReportError::NotAReport("it is empty".into()));
    }
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut path: Vec<String> = Vec::new();
    let mut buf = String::new();
    let mut b = Builder::default();
    let mut seen_feedback = false;
    // A stray <xs:schema> left open before <feedback> (ikea.com's reports)
    // is forgiven once <feedback> itself is closed.
    let mut feedback_closed = false;
    let mut events = 0u64;
    loop {
        events += 1;
        if events.is_multiple_of(4096) && started.elapsed() > limits.time_budget {
            return Err(ReportError::TooSlow);
        }
        let ev = reader
            .read_event()
            .map_err(|e| ReportError::Xml(e.to_string()))?;
        match ev {
            Event::DocType(_) => return Err(ReportError::Doctype),
            Event::Start(e) => {
                let name = local(e.name().as_ref());
                if name == "feedback" && !seen_feedback {
                    seen_feedback = true;
                    b.rfc9990 = e.attributes().flatten().any(|a| {
                        &*a.value == "urn:ietf:params:xml:ns:dmarc-2.0"
                    });
                }
                path.push(name);
                if path.len() > MAX_DEPTH {
                    return Err(ReportError::Xml(format!("nesting deeper than {MAX_DEPTH}")));
                }
                buf.clear();
                if let Some(rel) = below_feedback(&path) {
                    b.open(rel);
                }
            }
            Event::End(_) => {
                if let Some(rel) = below_feedback(&path) {
                    if rel.is_empty() {
                        feedback_closed = true;
                    }
                    b.close(rel, &buf, limits)?;
                }
                buf.clear();
                path.pop();
            }
            // Entity references come as events of their own (below), so
            // text is taken as it stands.
            Event::Text(t) => buf.push_str(&t.into_inner()),
            Event::CData(t) => buf.push_str(&t.into_inner()),
            Event::GeneralRef(r) => buf.push(entity(&r.into_inner())?),
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_feedback {
        return Err(ReportError::NotAReport("there is no <feedback> element".into()));
    }
    if !feedback_closed {
        return Err(ReportError::Xml("the document ends inside an element".into()));
    }
    b.build()
}

/// The path below the first `feedback`, if the element is inside one.
fn below_feedback(path: &[String]) -> Option<&[String]> {
    let i = path.iter().position(|p| p == "feedback")?;
    Some(&path[i + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = r#"<?xml version="1.0"?>
<feedback>
  <report_metadata><org_name>Reporter &amp; Co</org_name><email>r@x.example</email>
    <report_id>42</report_id><date_range><begin>1700000000</begin><end>1700086399.0</end></date_range></report_metadata>
  <policy_published><domain>Example.COM</domain><p>Reject</p><pct>100</pct></policy_published>
  <record><row><source_ip>192.0.2.1</source_ip><count>3</count>
    <policy_evaluated><disposition>none</disposition><dkim>Pass</dkim><spf>fail</spf><reason><type>forwarded</type><comment></comment></reason></policy_evaluated></row>
    <identifiers><header_from>example.com</header_from></identifiers>
    <auth_results><dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim><spf><domain>fwd.example</domain><result>Unknown</result></spf></auth_results></record>
</feedback>"#;

    #[test]
    fn a_report_with_the_quirks_of_real_reporters() {
        let r = parse(REPORT.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(r.org_name, "Reporter & Co");
        assert_eq!((r.begin, r.end), (1700000000, 1700086399));
        assert_eq!(r.policy.domain, "example.com");
        assert_eq!(r.policy.p.as_deref(), Some("reject"));
        assert_eq!(r.messages(), 3);
        let rec = &r.records[0];
        assert_eq!(rec.dkim, "pass");
        assert_eq!(rec.reasons[0].kind, "forwarded");
        assert_eq!(rec.spf_results[0].result, "unknown");
        assert_eq!(rec.dkim_results[0].selector.as_deref(), Some("s1"));
        // A namespace prefix, a stray schema before it.
        let prefixed = REPORT.replace("<feedback>", "<xs:schema xmlns:xs=\"x\"/><ns1:feedback xmlns:ns1=\"y\">").replace("</feedback>", "</ns1:feedback>");
        assert_eq!(parse(prefixed.as_bytes(), &Limits::default()).unwrap().messages(), 3);
    }

    #[test]
    fn doctype_entities_and_floods_are_refused() {
        let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;\">]><feedback>&lol2;</feedback>";
        assert_eq!(parse(laughs.as_bytes(), &Limits::default()), Err(ReportError::Doctype));
        let unknown = REPORT.replace("&amp;", "&lol;");
        assert!(matches!(parse(unknown.as_bytes(), &Limits::default()), Err(ReportError::Xml(_))));
        let deep = format!("<feedback>{}{}</feedback>", "<a>".repeat(100), "</a>".repeat(100));
        assert!(matches!(parse(deep.as_bytes(), &Limits::default()), Err(ReportError::Xml(_))));
        let many = REPORT.replace("</feedback>", &format!("{}</feedback>", REPORT.split("<record>").nth(1).map(|r| format!("<record>{}", r.split("</feedback>").next().unwrap())).unwrap().repeat(5)));
        let l = Limits { max_records: 3, ..Default::default() };
        assert_eq!(parse(many.as_bytes(), &l), Err(ReportError::TooManyRecords(3)));
        assert!(matches!(parse(b"", &Limits::default()), Err(ReportError::NotAReport(_))));
        assert!(parse(b"<feedback><report_metadata>", &Limits::default()).is_err());
        let no_id = REPORT.replace("<report_id>42</report_id>", "");
        assert_eq!(parse(no_id.as_bytes(), &Limits::default()), Err(ReportError::Missing("report_metadata/report_id")));
    }

    #[test]
    fn windows_1252_and_bad_utf8() {
        let mut latin = REPORT.replace("<?xml version=\"1.0\"?>", "<?xml version=\"1.0\" encoding=\"windows-1252\"?>").replace("Reporter &amp; Co", "Caf\u{0}").into_bytes();
        let at = latin.windows(4).position(|w| w == b"Caf\0").unwrap();
        latin[at + 3] = 0xE9;
        assert_eq!(parse(&latin, &Limits::default()).unwrap().org_name, "Café");
        let mut bad = REPORT.as_bytes().to_vec();
        let at = bad.windows(8).position(|w| w == b"Reporter").unwrap();
        bad[at] = 0xFF;
        assert!(parse(&bad, &Limits::default()).unwrap().org_name.ends_with("eporter & Co"));
    }
}
