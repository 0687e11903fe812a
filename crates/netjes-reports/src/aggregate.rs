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

/// The text of the report when its declaration names another encoding
/// than UTF-8 (windows-1252 and Latin-1 are seen); `None` for UTF-8, which
/// is read as it stands, a bad octet replaced where it is, so one bad byte
/// in a comment does not lose the report.
fn decode(bytes: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).to_ascii_lowercase();
    let declared = head
        .split("encoding=")
        .nth(1)
        .and_then(|r| r.trim_start_matches(['"', '\'']).split(['"', '\'']).next())
        .map(str::to_string);
    let enc = declared.filter(|e| e != "utf-8" && e != "us-ascii")?;
    let dec = mail_parser::decoders::charsets::map::charset_decoder(enc.as_bytes())?;
    Some(dec(bytes))
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
    fn open(&mut self, rel: &[Tag]) {
        match rel {
            [Tag::Record] => self.record = Some(RecordBuilder::default()),
            [Tag::Record, Tag::Row, Tag::PolicyEvaluated, Tag::Reason] => {
                if let Some(rec) = &mut self.record {
                    rec.reasons.push(Reason::default());
                }
            }
            [Tag::Record, Tag::AuthResults, Tag::Dkim] => {
                if let Some(rec) = &mut self.record {
                    rec.dkim_results.push(DkimAuth::default());
                }
            }
            [Tag::Record, Tag::AuthResults, Tag::Spf] => {
                if let Some(rec) = &mut self.record {
                    rec.spf_results.push(SpfAuth::default());
                }
            }
            _ => {}
        }
    }

    /// An element closes with its text.
    fn close(&mut self, rel: &[Tag], text: &str, limits: &Limits) -> Result<(), ReportError> {
        let p = &mut self.policy;
        match rel {
            [Tag::Version] => self.version = some(text),
            [Tag::ReportMetadata, Tag::OrgName] => self.org_name = some(text),
            [Tag::ReportMetadata, Tag::Email] => self.email = some(text),
            [Tag::ReportMetadata, Tag::ReportId] => self.report_id = some(text),
            [Tag::ReportMetadata, Tag::Error] => self.errors.extend(some(text)),
            [Tag::ReportMetadata, Tag::DateRange, Tag::Begin] => self.begin = some(text),
            [Tag::ReportMetadata, Tag::DateRange, Tag::End] => self.end = some(text),
            [Tag::PolicyPublished, Tag::Domain] => p.domain = word(text).trim_end_matches('.').to_string(),
            [Tag::PolicyPublished, Tag::Adkim] => p.adkim = some(&word(text)),
            [Tag::PolicyPublished, Tag::Aspf] => p.aspf = some(&word(text)),
            [Tag::PolicyPublished, Tag::P] => p.p = some(&word(text)),
            [Tag::PolicyPublished, Tag::Sp] => p.sp = some(&word(text)),
            [Tag::PolicyPublished, Tag::Np] => p.np = some(&word(text)),
            [Tag::PolicyPublished, Tag::Pct] => p.pct = some(text),
            [Tag::PolicyPublished, Tag::Fo] => p.fo = some(text),
            [Tag::PolicyPublished, Tag::Testing] => p.testing = some(&word(text)),
            [Tag::PolicyPublished, Tag::DiscoveryMethod] => p.discovery_method = some(&word(text)),
            [Tag::Record] => {
                if self.records.len() >= limits.max_records {
                    return Err(ReportError::TooManyRecords(limits.max_records));
                }
                if let Some(rec) = self.record.take() {
                    self.records.push(rec.build()?);
                }
            }
            [Tag::Record, rest @ ..] => {
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

fn record_field(rec: &mut RecordBuilder, r: &[Tag], text: &str) {
    match r {
        [Tag::Row, Tag::SourceIp] => rec.source_ip = some(text),
        [Tag::Row, Tag::Count] => rec.count = some(text),
        [Tag::Row, Tag::PolicyEvaluated, Tag::Disposition] => rec.disposition = word(text),
        [Tag::Row, Tag::PolicyEvaluated, Tag::Dkim] => rec.dkim = word(text),
        [Tag::Row, Tag::PolicyEvaluated, Tag::Spf] => rec.spf = word(text),
        [Tag::Row, Tag::PolicyEvaluated, Tag::Reason, Tag::Type] => {
            if let Some(x) = rec.reasons.last_mut() {
                x.kind = word(text);
            }
        }
        [Tag::Row, Tag::PolicyEvaluated, Tag::Reason, Tag::Comment] => {
            if let Some(x) = rec.reasons.last_mut() {
                x.comment = some(text);
            }
        }
        [Tag::Identifiers, Tag::HeaderFrom] => rec.header_from = word(text),
        [Tag::Identifiers, Tag::EnvelopeFrom] => rec.envelope_from = some(&word(text)),
        [Tag::Identifiers, Tag::EnvelopeTo] => rec.envelope_to = some(&word(text)),
        [Tag::AuthResults, Tag::Dkim, field] => {
            if let Some(d) = rec.dkim_results.last_mut() {
                match field {
                    Tag::Domain => d.domain = word(text),
                    Tag::Selector => d.selector = some(text),
                    Tag::Result => d.result = word(text),
                    _ => {}
                }
            }
        }
        [Tag::AuthResults, Tag::Spf, field] => {
            if let Some(s) = rec.spf_results.last_mut() {
                match field {
                    Tag::Domain => s.domain = word(text),
                    Tag::Scope => s.scope = some(&word(text)),
                    Tag::Result => s.result = word(text),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// The element names a report uses, matched without case and without
/// a namespace prefix; others are `Other`. Paths of these, not strings,
/// keep the parser free of an allocation per element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Feedback,
    Version,
    ReportMetadata,
    OrgName,
    Email,
    ReportId,
    Error,
    DateRange,
    Begin,
    End,
    PolicyPublished,
    Domain,
    Adkim,
    Aspf,
    P,
    Sp,
    Np,
    Pct,
    Fo,
    Testing,
    DiscoveryMethod,
    Record,
    Row,
    SourceIp,
    Count,
    PolicyEvaluated,
    Disposition,
    Dkim,
    Spf,
    Reason,
    Type,
    Comment,
    Identifiers,
    HeaderFrom,
    EnvelopeFrom,
    EnvelopeTo,
    AuthResults,
    Selector,
    Result,
    Scope,
    Other,
}

fn tag(name: &[u8]) -> Tag {
    let local = name.rsplit(|b| *b == b':').next().unwrap_or(name);
    // Lower case on the stack, then one match: an element is named with
    // no allocation and no scan of the list.
    let mut low = [0u8; 20];
    let Some(dst) = low.get_mut(..local.len()) else { return Tag::Other };
    for (d, s) in dst.iter_mut().zip(local) {
        *d = s.to_ascii_lowercase();
    }
    match &*dst {
        b"feedback" => Tag::Feedback,
        b"version" => Tag::Version,
        b"report_metadata" => Tag::ReportMetadata,
        b"org_name" => Tag::OrgName,
        b"email" => Tag::Email,
        b"report_id" => Tag::ReportId,
        b"error" => Tag::Error,
        b"date_range" => Tag::DateRange,
        b"begin" => Tag::Begin,
        b"end" => Tag::End,
        b"policy_published" => Tag::PolicyPublished,
        b"domain" => Tag::Domain,
        b"adkim" => Tag::Adkim,
        b"aspf" => Tag::Aspf,
        b"p" => Tag::P,
        b"sp" => Tag::Sp,
        b"np" => Tag::Np,
        b"pct" => Tag::Pct,
        b"fo" => Tag::Fo,
        b"testing" => Tag::Testing,
        b"discovery_method" => Tag::DiscoveryMethod,
        b"record" => Tag::Record,
        b"row" => Tag::Row,
        b"source_ip" => Tag::SourceIp,
        b"count" => Tag::Count,
        b"policy_evaluated" => Tag::PolicyEvaluated,
        b"disposition" => Tag::Disposition,
        b"dkim" => Tag::Dkim,
        b"spf" => Tag::Spf,
        b"reason" => Tag::Reason,
        b"type" => Tag::Type,
        b"comment" => Tag::Comment,
        b"identifiers" => Tag::Identifiers,
        b"header_from" => Tag::HeaderFrom,
        b"envelope_from" => Tag::EnvelopeFrom,
        b"envelope_to" => Tag::EnvelopeTo,
        b"auth_results" => Tag::AuthResults,
        b"selector" => Tag::Selector,
        b"result" => Tag::Result,
        b"scope" => Tag::Scope,
        _ => Tag::Other,
    }
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
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    // Borrowed, not copied, when it is valid UTF-8 (nearly always).
    let text: std::borrow::Cow<'_, str> = match decode(bytes) {
        Some(d) => d.into(),
        // from_utf8 checks a word at a time; the lossy form only when needed.
        None => match std::str::from_utf8(bytes) {
            Ok(t) => t.into(),
            Err(_) => String::from_utf8_lossy(bytes),
        },
    };
    if text.trim().is_empty() {
        return Err(ReportError::NotAReport("it is empty".into()));
    }
    let mut reader = quick_xml::Reader::from_str(&text);
    let mut path: Vec<Tag> = Vec::new();
    // An element's text: borrowed from the document when it comes in one
    // piece (nearly always), owned when an entity splits it.
    let mut buf: std::borrow::Cow<'_, str> = "".into();
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
        // Matched in place: quick-xml's Result is large, and moving it
        // through map_err took a third of the parser's own time.
        match reader.read_event() {
            Err(e) => return Err(ReportError::Xml(e.to_string())),
            Ok(Event::DocType(_)) => return Err(ReportError::Doctype),
            Ok(Event::Start(e)) => {
                let name = tag(e.name().as_ref().as_bytes());
                if name == Tag::Feedback && !seen_feedback {
                    seen_feedback = true;
                    b.rfc9990 = e.attributes().flatten().any(|a| {
                        &*a.value == "urn:ietf:params:xml:ns:dmarc-2.0"
                    });
                }
                path.push(name);
                if path.len() > MAX_DEPTH {
                    return Err(ReportError::Xml(format!("nesting deeper than {MAX_DEPTH}")));
                }
                buf = "".into();
                if let Some(rel) = below_feedback(&path) {
                    b.open(rel);
                }
            }
            Ok(Event::End(_)) => {
                if let Some(rel) = below_feedback(&path) {
                    if rel.is_empty() {
                        feedback_closed = true;
                    }
                    b.close(rel, &buf, limits)?;
                }
                buf = "".into();
                path.pop();
            }
            // Entity references come as events of their own (below), so
            // text is taken as it stands.
            Ok(Event::Text(t)) => append(&mut buf, t.into_inner()),
            Ok(Event::CData(t)) => append(&mut buf, t.into_inner()),
            Ok(Event::GeneralRef(r)) => buf.to_mut().push(entity(&r.into_inner())?),
            Ok(Event::Eof) => break,
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

fn append<'a>(buf: &mut std::borrow::Cow<'a, str>, t: std::borrow::Cow<'a, str>) {
    if buf.is_empty() {
        *buf = t;
    } else {
        buf.to_mut().push_str(&t);
    }
}

/// The path below the first `feedback`, if the element is inside one.
fn below_feedback(path: &[Tag]) -> Option<&[Tag]> {
    let i = path.iter().position(|p| *p == Tag::Feedback)?;
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
