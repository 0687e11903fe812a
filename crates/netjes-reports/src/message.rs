//! Reports that arrive by mail: the attachments of a report mail (an XML,
//! a .gz or a .zip, whatever its content type says), a TLS report
//! (application/tlsrpt+json or +gzip), or a failure report.

use crate::{failure, unpack, Limits, Report, ReportError};
use mail_parser::{MessageParser, MimeHeaders};

/// Whether bytes look like a mail rather than a bare report file.
pub fn looks_like_mail(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(4096)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    !text.trim_start().starts_with('<')
        && !text.trim_start().starts_with('{')
        && (text.contains("\ncontent-type:") || text.starts_with("content-type:") || text.starts_with("return-path:") || text.starts_with("received:"))
        && (text.contains("\nfrom:") || text.starts_with("from:"))
}

/// A part that carries a report file: by its name or type, or by what its
/// first octets are (gzip, zip, XML, JSON), since reporters label them
/// every which way.
fn is_report_part(name: &str, ctype: &str, bytes: &[u8]) -> bool {
    let n = name.to_ascii_lowercase();
    let t = ctype.to_ascii_lowercase();
    n.ends_with(".xml") || n.ends_with(".gz") || n.ends_with(".zip") || n.ends_with(".json")
        || t.contains("zip") || t.contains("gzip") || t.contains("xml") || t.contains("tlsrpt")
        || bytes.starts_with(&[0x1f, 0x8b]) || bytes.starts_with(b"PK\x03\x04")
}

/// A part's octets. mail-parser turns a text/* part into text, which
/// ruins a gzip or zip that a reporter labelled text/plain; such a part
/// is decoded again from the mail, by its transfer encoding alone.
fn binary_contents<'a>(raw: &'a [u8], part: &'a mail_parser::MessagePart<'a>) -> std::borrow::Cow<'a, [u8]> {
    use mail_parser::{decoders, Encoding, PartType};
    if !matches!(part.body, PartType::Text(_) | PartType::Html(_)) {
        return part.contents().into();
    }
    let body = raw.get(part.offset_body as usize..part.offset_end as usize).unwrap_or_default();
    let decoded = match part.encoding {
        Encoding::Base64 => decoders::base64::base64_decode(body),
        Encoding::QuotedPrintable => decoders::quoted_printable::quoted_printable_decode(body),
        _ => None,
    };
    decoded.map(Into::into).unwrap_or_else(|| body.into())
}

/// Every report in a mail; a mail with none is one error.
pub fn reports_in(bytes: &[u8], limits: &Limits) -> Vec<Result<Report, ReportError>> {
    let Some(m) = MessageParser::default().parse(bytes) else {
        return vec![Err(ReportError::NotAReport("the mail cannot be read".into()))];
    };
    if let Some(f) = failure::from_mail(&m) {
        return vec![f.map(Report::Failure)];
    }
    let mut out = Vec::new();
    for (i, part) in m.parts.iter().enumerate() {
        // The root of a multipart is its container, not a file.
        if i == 0 && m.parts.len() > 1 {
            continue;
        }
        let name = part.attachment_name().unwrap_or("").to_string();
        let ctype = part
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            .unwrap_or_default();
        if ctype.starts_with("multipart/") || ctype.starts_with("text/html") {
            continue;
        }
        let data = binary_contents(bytes, part);
        let data = &data[..];
        if !is_report_part(&name, &ctype, data) {
            continue;
        }
        match unpack::documents(&name, data, limits) {
            Ok(docs) => out.extend(docs.iter().map(|d| crate::document(d, limits))),
            Err(e) => out.push(Err(e)),
        }
    }
    if out.is_empty() {
        out.push(Err(ReportError::NotAReport("the mail carries no report file".into())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const XML: &str = "<feedback><report_metadata><org_name>r</org_name><report_id>ID</report_id><date_range><begin>1700000000</begin><end>1700086399</end></date_range></report_metadata><policy_published><domain>example.com</domain></policy_published><record><row><source_ip>192.0.2.1</source_ip><count>2</count></row><identifiers><header_from>example.com</header_from></identifiers></record></feedback>";

    fn b64(data: &[u8]) -> String {
        // Standard base64 in 76-column lines, as mailers write it.
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for (i, c) in data.chunks(3).enumerate() {
            if i > 0 && i % 19 == 0 {
                out.push_str("\r\n");
            }
            let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
            for k in 0..4 {
                out.push(if k <= c.len() { A[(n >> (18 - 6 * k) & 63) as usize] as char } else { '=' });
            }
        }
        out
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn mail(parts: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut m = String::from("From: r@reporter.example\r\nTo: d@example.com\r\nSubject: Report\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nA report.\r\n");
        for (head, body) in parts {
            m.push_str(&format!("--b\r\n{head}\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n", b64(body)));
        }
        m.push_str("--b--\r\n");
        m.into_bytes()
    }

    fn ids(r: Vec<Result<Report, ReportError>>) -> Vec<String> {
        r.into_iter().map(|r| r.map(|r| r.key().1).unwrap_or_else(|e| format!("error: {e}"))).collect()
    }

    #[test]
    fn attachments_are_found_by_name_type_or_content() {
        let l = Limits::default();
        let x = |id: &str| XML.replace("ID", id).into_bytes();
        let m = mail(&[
            // RFC 2231 continuations split the file name.
            ("Content-Type: application/gzip\r\nContent-Disposition: attachment; filename*0=\"google.com!example.com!17000\"; filename*1=\"00000!1700086399.xml.gz\"", gz(&x("split"))),
            // A gzip labelled as text, found by its magic number.
            ("Content-Type: text/plain; name=\"report\"", gz(&x("mislabelled"))),
            // And without a name at all.
            ("Content-Type: text/plain", gz(&x("nameless"))),
            // Plain XML, uncompressed, as some reporters send it.
            ("Content-Type: application/octet-stream; name=\"r.xml\"", x("plain")),
        ]);
        assert_eq!(ids(reports_in(&m, &l)), ["split", "mislabelled", "nameless", "plain"]);
        let none = b"From: a@b.example\r\nContent-Type: text/plain\r\nSubject: hi\r\n\r\nno report here\r\n";
        assert_eq!(ids(reports_in(none, &l)), ["error: it is not a report: the mail carries no report file"]);
    }
}
