//! Aggregate reports written, as a receiver owes them (RFC 9990): the
//! XML in the dmarc-2.0 namespace, identical rows counted together, the
//! file name and the subject the RFC gives. Free of IO; the caller turns
//! its verdicts into [`Record`]s, one per message.

use crate::aggregate::{AggregateReport, Record};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The namespace of RFC 9990 reports.
pub const NAMESPACE: &str = "urn:ietf:params:xml:ns:dmarc-2.0";

/// Counts identical records together (everything but the count equal),
/// the biggest first, then by address: one row per distinct outcome, as
/// RFC 9990 §2.1 asks ("one record per (IP, result, IDs, auths) tuple").
pub fn merge(records: Vec<Record>) -> Vec<Record> {
    let mut by: BTreeMap<String, Record> = BTreeMap::new();
    for r in records {
        let key = serde_json::to_string(&Record { count: 0, ..r.clone() }).unwrap_or_default();
        by.entry(key).and_modify(|x| x.count += r.count).or_insert(r);
    }
    let mut out: Vec<Record> = by.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.source_ip.cmp(&b.source_ip)));
    out
}

/// XML character data: the five characters that markup uses escaped, and
/// control characters (which XML 1.0 cannot carry) dropped.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {}
            c => o.push(c),
        }
    }
    o
}

fn el(out: &mut String, indent: usize, name: &str, value: &str) {
    let _ = writeln!(out, "{:indent$}<{name}>{}</{name}>", "", esc(value));
}

fn opt(out: &mut String, indent: usize, name: &str, value: &Option<String>) {
    if let Some(v) = value {
        el(out, indent, name, v);
    }
}

/// The report as RFC 9990 XML. `generator` names the software.
pub fn to_xml(r: &AggregateReport, generator: &str) -> String {
    let mut o = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(o, "<feedback xmlns=\"{NAMESPACE}\">");
    el(&mut o, 2, "version", "1.0");
    o.push_str("  <report_metadata>\n");
    el(&mut o, 4, "org_name", &r.org_name);
    el(&mut o, 4, "email", r.email.as_deref().unwrap_or_default());
    el(&mut o, 4, "report_id", &r.report_id);
    let _ = writeln!(o, "    <date_range>\n      <begin>{}</begin>\n      <end>{}</end>\n    </date_range>", r.begin, r.end);
    // RFC 9990's schema allows one error element: several are joined.
    if !r.errors.is_empty() {
        el(&mut o, 4, "error", &r.errors.join("; "));
    }
    el(&mut o, 4, "generator", generator);
    o.push_str("  </report_metadata>\n  <policy_published>\n");
    let p = &r.policy;
    el(&mut o, 4, "domain", &p.domain);
    opt(&mut o, 4, "discovery_method", &p.discovery_method);
    opt(&mut o, 4, "adkim", &p.adkim);
    opt(&mut o, 4, "aspf", &p.aspf);
    el(&mut o, 4, "p", p.p.as_deref().unwrap_or("none"));
    opt(&mut o, 4, "sp", &p.sp);
    opt(&mut o, 4, "np", &p.np);
    opt(&mut o, 4, "testing", &p.testing);
    opt(&mut o, 4, "fo", &p.fo);
    o.push_str("  </policy_published>\n");
    for rec in &r.records {
        record(&mut o, rec);
    }
    o.push_str("</feedback>\n");
    o
}

fn record(o: &mut String, rec: &Record) {
    o.push_str("  <record>\n    <row>\n");
    el(o, 6, "source_ip", &rec.source_ip.to_string());
    el(o, 6, "count", &rec.count.to_string());
    o.push_str("      <policy_evaluated>\n");
    el(o, 8, "disposition", &rec.disposition);
    el(o, 8, "dkim", &rec.dkim);
    el(o, 8, "spf", &rec.spf);
    for reason in &rec.reasons {
        o.push_str("        <reason>\n");
        el(o, 10, "type", &reason.kind);
        opt(o, 10, "comment", &reason.comment);
        o.push_str("        </reason>\n");
    }
    o.push_str("      </policy_evaluated>\n    </row>\n    <identifiers>\n");
    opt(o, 6, "envelope_to", &rec.envelope_to);
    opt(o, 6, "envelope_from", &rec.envelope_from);
    el(o, 6, "header_from", &rec.header_from);
    o.push_str("    </identifiers>\n    <auth_results>\n");
    for d in &rec.dkim_results {
        o.push_str("      <dkim>\n");
        el(o, 8, "domain", &d.domain);
        // RFC 9990 asks for the selector of every signature.
        el(o, 8, "selector", d.selector.as_deref().unwrap_or_default());
        el(o, 8, "result", &d.result);
        o.push_str("      </dkim>\n");
    }
    // RFC 9990 Appendix A: zero or one SPF result, and "mfrom" the only
    // scope it names: the MAIL FROM result when there is one, else the
    // HELO check without a scope.
    let spf = rec.spf_results.iter().find(|s| s.scope.as_deref() == Some("mfrom")).or(rec.spf_results.first());
    if let Some(s) = spf {
        o.push_str("      <spf>\n");
        el(o, 8, "domain", &s.domain);
        opt(o, 8, "scope", &s.scope.clone().filter(|x| x == "mfrom"));
        el(o, 8, "result", &s.result);
        o.push_str("      </spf>\n");
    }
    o.push_str("    </auth_results>\n  </record>\n");
}

/// The file name of RFC 9990 §2.5.1: receiver!policy-domain!begin!end,
/// with a unique id when there could be two for the same span.
pub fn file_name(receiver: &str, policy_domain: &str, begin: i64, end: i64, unique: Option<&str>) -> String {
    let u = unique.map(|u| format!("!{u}")).unwrap_or_default();
    format!("{receiver}!{policy_domain}!{begin}!{end}{u}.xml.gz")
}

/// The file name of a report, or of a part of one from [`fit`] (its
/// `N-of-K` as the unique id).
pub fn report_file_name(r: &AggregateReport, receiver: &str) -> String {
    let part = r
        .report_id
        .rsplit_once('.')
        .map(|(_, p)| p)
        .filter(|p| p.split_once("-of-").is_some_and(|(n, k)| n.parse::<u32>().is_ok() && k.parse::<u32>().is_ok()));
    file_name(receiver, &r.policy.domain, r.begin, r.end, part)
}

/// YYYY-MM-DD of a day number (days since the epoch).
pub fn day_text(day: i64) -> String {
    let (z, doe_base) = (day + 719_468, 146_097);
    // Howard Hinnant's civil_from_days.
    let era = z.div_euclid(doe_base);
    let doe = z - era * doe_base;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The subject of RFC 9990 §2.5.2.
pub fn subject(policy_domain: &str, receiver: &str, report_id: &str) -> String {
    format!("Report Domain: {policy_domain} Submitter: {receiver} Report-ID: <{report_id}>")
}

/// The report gzipped, as it is attached.
pub fn gzip(xml: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(xml.as_bytes());
    e.finish().unwrap_or_default()
}

/// The report in as many parts as keep each gzipped file within
/// `max_bytes` (RFC 9990 leaves the size to the receiver; a size suffix
/// on the rua= URI is ignored, as it says): the records are divided
/// evenly, and each part's report id gets `.N-of-K`. A part of one record
/// still over the limit is dropped: it cannot be made smaller.
pub fn fit(r: &AggregateReport, generator: &str, max_bytes: usize) -> Vec<(AggregateReport, Vec<u8>)> {
    let whole = gzip(&to_xml(r, generator));
    if whole.len() <= max_bytes || r.records.len() <= 1 {
        return if whole.len() <= max_bytes { vec![(r.clone(), whole)] } else { vec![] };
    }
    let mut k = whole.len().div_ceil(max_bytes).max(2);
    loop {
        let per = r.records.len().div_ceil(k);
        let parts: Vec<(AggregateReport, Vec<u8>)> = r
            .records
            .chunks(per)
            .enumerate()
            .map(|(i, recs)| {
                let part = AggregateReport {
                    report_id: format!("{}.{}-of-{}", r.report_id, i + 1, r.records.len().div_ceil(per)),
                    records: recs.to_vec(),
                    ..r.clone()
                };
                let gz = gzip(&to_xml(&part, generator));
                (part, gz)
            })
            .collect();
        if parts.iter().all(|(_, gz)| gz.len() <= max_bytes) || per == 1 {
            return parts.into_iter().filter(|(_, gz)| gz.len() <= max_bytes).collect();
        }
        k *= 2;
    }
}

/// What a report mail needs besides the report.
#[derive(Debug, Clone)]
pub struct MailParts<'a> {
    pub from: &'a str,
    pub to: &'a str,
    /// RFC 5322 date.
    pub date: &'a str,
    pub message_id: &'a str,
}

impl MailParts<'_> {
    /// The header block of a report mail, Auto-Submitted (RFC 3834) so
    /// that no auto-responder answers it; `content_type` its top part's.
    fn head(&self, subject: &str, content_type: &str) -> String {
        format!(
            "From: {}\r\nTo: {}\r\nSubject: {subject}\r\nDate: {}\r\nMessage-ID: <{}>\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n",
            self.from, self.to, self.date, self.message_id
        )
    }
}

/// The report mail (RFC 9990 §2.5): the subject of the RFC, a line of
/// text, and the gzipped report attached; Auto-Submitted (RFC 3834) so
/// that no auto-responder answers it.
pub fn mail(r: &AggregateReport, receiver: &str, m: &MailParts<'_>, gz: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let name = report_file_name(r, receiver);
    let b64 = base64::engine::general_purpose::STANDARD.encode(gz);
    let lines: Vec<&str> = b64.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
    let head = m.head(&subject(&r.policy.domain, receiver, &r.report_id), "multipart/mixed; boundary=\"netjes-report\"");
    format!(
        "{head}--netjes-report\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDMARC aggregate report for {domain} from {receiver}, {records} records, {messages} messages.\r\n--netjes-report\r\nContent-Type: application/gzip; name=\"{name}\"\r\nContent-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}\r\n--netjes-report--\r\n",
        domain = r.policy.domain,
        records = r.records.len(),
        messages = r.messages(),
        body = lines.join("\r\n"),
    )
    .into_bytes()
}

/// What a failure report (RFC 6591, DMARC's auth-failure) says of one
/// message.
#[derive(Debug, Clone)]
pub struct FailureFacts<'a> {
    pub reported_domain: &'a str,
    pub source_ip: &'a str,
    pub original_mail_from: &'a str,
    pub arrival_date: &'a str,
    /// Our Authentication-Results value for the message.
    pub authentication_results: &'a str,
    /// none, dkim, spf or dkim/spf: what aligned.
    pub identity_alignment: &'a str,
    /// delivered, spam, policy, reject or other (RFC 6591 §3.2).
    pub delivery_result: &'a str,
    /// The failed message's header block: the only part of it that is
    /// sent, unless the caller gives its body too.
    pub headers: &'a [u8],
    pub body: Option<&'a [u8]>,
}

/// A DMARC failure report mail (RFC 6591, the auth-failure type of RFC
/// 6591 §3.2): a line of text, the machine-readable part, and the failed
/// message's header block (text/rfc822-headers), or the whole message
/// (message/rfc822) when its body is given.
pub fn failure_mail(f: &FailureFacts<'_>, m: &MailParts<'_>, generator: &str) -> Vec<u8> {
    // A line that would end the field early is folded away.
    let one = |s: &str| s.replace(['\r', '\n'], " ");
    let (ctype, original) = match f.body {
        Some(b) => ("message/rfc822", [f.headers, b].concat()),
        None => ("text/rfc822-headers", f.headers.to_vec()),
    };
    let head = m.head(
        &format!("DMARC failure report for {} from {}", one(f.reported_domain), one(f.source_ip)),
        "multipart/report; report-type=feedback-report; boundary=\"netjes-failure\"",
    );
    let mut out = format!(
        "{head}--netjes-failure\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nA message from {ip} that says it is from {domain} failed DMARC here.\r\n--netjes-failure\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: auth-failure\r\nUser-Agent: {generator}\r\nVersion: 1\r\nOriginal-Mail-From: <{mf}>\r\nArrival-Date: {arrival}\r\nSource-IP: {ip}\r\nReported-Domain: {domain}\r\nAuthentication-Results: {ar}\r\nIdentity-Alignment: {align}\r\nAuth-Failure: dmarc\r\nDelivery-Result: {result}\r\n\r\n--netjes-failure\r\nContent-Type: {ctype}\r\n\r\n",
        domain = one(f.reported_domain),
        ip = one(f.source_ip),
        mf = one(f.original_mail_from),
        arrival = one(f.arrival_date),
        ar = one(f.authentication_results),
        align = f.identity_alignment,
        result = f.delivery_result,
    )
    .into_bytes();
    out.extend_from_slice(&original);
    if !original.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--netjes-failure--\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{DkimAuth, PolicyPublished, Reason, SpfAuth};

    fn rec(ip: &str, dkim: &str) -> Record {
        Record {
            source_ip: ip.parse().unwrap(),
            count: 1,
            disposition: if dkim == "pass" { "none".into() } else { "reject".into() },
            dkim: dkim.into(),
            spf: "fail".into(),
            reasons: if dkim == "pass" { vec![] } else { vec![Reason { kind: "local_policy".into(), comment: Some("a <comment> & more".into()) }] },
            header_from: "example.com".into(),
            envelope_from: Some("bounce.example.com".into()),
            envelope_to: Some("example.org".into()),
            dkim_results: vec![DkimAuth { domain: "example.com".into(), selector: Some("s1".into()), result: dkim.into() }],
            spf_results: vec![SpfAuth { domain: "bounce.example.com".into(), scope: Some("mfrom".into()), result: "fail".into() }],
        }
    }

    #[test]
    fn what_netjes_writes_netjes_reads() {
        let records = merge(vec![rec("192.0.2.1", "pass"), rec("198.51.100.9", "fail"), rec("192.0.2.1", "pass"), rec("192.0.2.1", "pass")]);
        assert_eq!(records.iter().map(|r| r.count).collect::<Vec<_>>(), [3, 1]);
        let report = AggregateReport {
            format: "rfc9990",
            version: Some("1.0".into()),
            org_name: "mx.example.org".into(),
            email: Some("noreply-dmarc@mx.example.org".into()),
            report_id: "example.com!20787".into(),
            begin: 1_796_000_000,
            end: 1_796_086_399,
            errors: vec![],
            policy: PolicyPublished { domain: "example.com".into(), p: Some("reject".into()), adkim: Some("r".into()), aspf: Some("r".into()), testing: Some("n".into()), discovery_method: Some("treewalk".into()), ..Default::default() },
            records,
        };
        let xml = to_xml(&report, "netjes 0.1.0");
        assert!(xml.contains("<feedback xmlns=\"urn:ietf:params:xml:ns:dmarc-2.0\">") && xml.contains("<generator>netjes 0.1.0</generator>"), "{xml}");
        assert!(xml.contains("<comment>a &lt;comment&gt; &amp; more</comment>"), "{xml}");
        let back = crate::aggregate::parse(xml.as_bytes(), &Default::default()).unwrap();
        assert_eq!(back.format, "rfc9990");
        assert_eq!(back.records, report.records);
        assert_eq!(back.policy, report.policy);
        assert_eq!((back.org_name, back.report_id, back.begin, back.end), (report.org_name.clone(), report.report_id.clone(), report.begin, report.end));
        assert_eq!(file_name("mx.example.org", "example.com", 1, 2, None), "mx.example.org!example.com!1!2.xml.gz");
        assert_eq!((day_text(0), day_text(20_787), day_text(11_016)), ("1970-01-01".into(), "2026-11-30".into(), "2000-02-29".into()));
        // Over the size limit, the report comes in parts that each fit.
        let mut big = report.clone();
        big.records = (0..3000u32).map(|i| Record { source_ip: std::net::Ipv4Addr::from(0xC000_0000 + i * 7919).into(), ..rec("192.0.2.1", "pass") }).collect();
        let limit = gzip(&to_xml(&big, "netjes")).len() / 3;
        let parts = fit(&big, "netjes", limit);
        assert!(parts.len() >= 3 && parts.iter().all(|(_, gz)| gz.len() <= limit), "{}", parts.len());
        assert_eq!(parts.iter().map(|(p, _)| p.records.len()).sum::<usize>(), 3000);
        assert_eq!(parts[0].0.report_id, format!("example.com!20787.1-of-{}", parts.len()));
        assert_eq!(report_file_name(&parts[0].0, "mx"), format!("mx!example.com!1796000000!1796086399!1-of-{}.xml.gz", parts.len()));
        assert_eq!(report_file_name(&report, "mx"), "mx!example.com!1796000000!1796086399.xml.gz");
        assert_eq!(fit(&report, "netjes", 1_000_000).len(), 1);
        assert_eq!(subject("example.com", "mx.example.org", "x"), "Report Domain: example.com Submitter: mx.example.org Report-ID: <x>");
        // The mail carries it so that the mail reader finds it again.
        let parts = MailParts { from: "noreply-dmarc@mx.example.org", to: "d@example.com", date: "Mon, 30 Nov 2026 00:10:00 +0000", message_id: "r1@mx.example.org" };
        let m = mail(&report, "mx.example.org", &parts, &gzip(&xml));
        let text = String::from_utf8_lossy(&m);
        assert!(text.contains("Subject: Report Domain: example.com Submitter: mx.example.org Report-ID: <example.com!20787>") && text.contains("Auto-Submitted: auto-generated"), "{text}");
        match &crate::read("mail.eml", &m, &Default::default())[..] {
            [Ok(crate::Report::Aggregate(a))] => assert_eq!(a.records, report.records),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failure_report_carries_the_headers_only_and_reads_back() {
        let headers = b"From: <ceo@example.com>\r\nSubject: wire the money\r\nMessage-ID: <x@evil>\r\n\r\n";
        let f = FailureFacts {
            reported_domain: "example.com",
            source_ip: "203.0.113.66",
            original_mail_from: "x@evil.example",
            arrival_date: "Mon, 30 Nov 2026 09:00:00 +0000",
            authentication_results: "mx.example.org; spf=fail smtp.mailfrom=evil.example; dmarc=fail header.from=example.com",
            identity_alignment: "none",
            delivery_result: "reject",
            headers,
            body: None,
        };
        let parts = MailParts { from: "noreply-dmarc@mx.example.org", to: "ruf@example.com", date: "Mon, 30 Nov 2026 09:00:01 +0000", message_id: "f1@mx.example.org" };
        let m = failure_mail(&f, &parts, "netjes");
        match &crate::read("f.eml", &m, &Default::default())[..] {
            [Ok(crate::Report::Failure(r))] => {
                assert_eq!((r.reported_domain.as_deref(), r.source_ip.as_deref(), r.delivery_result.as_deref()), (Some("example.com"), Some("203.0.113.66"), Some("reject")));
                assert!(r.headers.as_deref().unwrap().contains("Subject: wire the money"));
            }
            other => panic!("{other:?}"),
        }
    }
}
