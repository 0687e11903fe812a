//! What the message says and links to: the text/plain alternative, images
//! against text, size, active content, deceptive and shortened links, and
//! risky attachments.

use crate::finding::Finding;
use crate::html::{scan, text_urls, HtmlFacts};
use crate::links::{is_shortener, org_domain, same_org, shown_domain, target, LinkHost};
use mail_parser::{Message, MimeHeaders, PartType};
use std::collections::{BTreeSet, HashSet};

/// Gmail clips a message whose HTML is over 102 KB ("[Message clipped]"),
/// hiding the rest, including the unsubscribe link at the bottom.
pub const GMAIL_CLIP: usize = 102 * 1024;

/// Attachment types that carry malware and that Gmail and Outlook block or
/// quarantine outright.
const RISKY: &[&str] = &[
    "exe", "scr", "pif", "com", "bat", "cmd", "vbs", "vbe", "js", "jse", "wsf", "wsh", "hta",
    "msi", "msp", "jar", "lnk", "ps1", "iso", "img", "vhd", "vhdx", "cpl", "reg", "chm", "docm",
    "xlsm", "pptm", "dotm", "xlam", "one", "appx", "msix", "apk", "dll", "sys",
];

/// What the content check found, besides findings: the link domains, for
/// the domain blocklists.
#[derive(Debug, Default)]
pub struct ContentFacts {
    pub findings: Vec<Finding>,
    /// Host names of http(s) links, deduplicated, in the order found.
    pub link_hosts: Vec<String>,
}

fn words(s: &str) -> HashSet<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .take(5000)
        .map(|w| w.to_lowercase())
        .collect()
}

fn list(v: &[String], max: usize) -> String {
    let mut s = v.iter().take(max).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > max {
        s.push_str(&format!(" and {} more", v.len() - max));
    }
    s
}

/// `related`: the domains that speak for the sender (From, DKIM d=, MAIL
/// FROM); links to their organizations are not "unrelated".
pub fn check_content(msg: &Message<'_>, related: &[String]) -> ContentFacts {
    let mut out = ContentFacts::default();
    let part_text = |id: &u32| match msg.parts.get(*id as usize).map(|p| &p.body) {
        Some(PartType::Text(t)) => Some(t.as_ref()),
        _ => None,
    };
    let part_html = |id: &u32| match msg.parts.get(*id as usize).map(|p| &p.body) {
        Some(PartType::Html(t)) => Some(t.as_ref()),
        _ => None,
    };
    let texts: Vec<&str> = msg.text_body.iter().filter_map(part_text).collect();
    let htmls: Vec<&str> = msg.html_body.iter().filter_map(part_html).collect();
    let html_size: usize = htmls.iter().map(|h| h.len()).sum();
    let mut facts = HtmlFacts::default();
    for h in &htmls {
        let f = scan(h);
        facts.links.extend(f.links);
        facts.links_dropped += f.links_dropped;
        facts.images += f.images;
        facts.scripts += f.scripts;
        facts.forms += f.forms;
        facts.objects += f.objects;
        if !facts.text.is_empty() {
            facts.text.push(' ');
        }
        facts.text.push_str(&f.text);
    }
    let plain: String = texts.join("\n");
    let f = &mut out.findings;

    if htmls.is_empty() && plain.trim().is_empty() && msg.attachments.is_empty() {
        f.push(
            Finding::new(
                "content.no-body",
                "the message has no text: filters treat empty mail as a probe or a mistake",
            )
            .fix("write what the message is about in its body"),
        );
    }
    if !htmls.is_empty() {
        if plain.trim().is_empty() {
            f.push(
                Finding::new("content.no-text-part", "the message is HTML only; spam filters score a missing text/plain alternative")
                    .fix("send multipart/alternative with a text/plain part that says the same as the HTML"),
            );
        } else {
            // The share of the HTML's words that the text part also has.
            let hw = words(&facts.text);
            let tw = words(&plain);
            if hw.len() >= 20 {
                let shared = hw.iter().filter(|w| tw.contains(*w)).count();
                let ratio = shared as f32 / hw.len() as f32;
                if ratio < 0.5 {
                    f.push(
                        Finding::new(
                            "content.text-html-mismatch",
                            format!("the text/plain part shares only {:.0}% of the HTML's words: filters see a text part written to fool them", ratio * 100.0),
                        )
                        .fix("generate the text part from the same content as the HTML"),
                    );
                }
            }
        }
        let visible = facts.text.chars().filter(|c| !c.is_whitespace()).count();
        if facts.images > 0 && visible < 100 {
            f.push(
                Finding::new("content.image-only", format!("the HTML is {} image(s) with {visible} characters of text: image-only mail is a classic spam trick", facts.images))
                    .fix("put the message in text, and use images as illustration"),
            );
        } else if facts.images >= 3 && visible / facts.images < 200 {
            f.push(
                Finding::new(
                    "content.image-heavy",
                    format!("{} images for {visible} characters of text", facts.images),
                )
                .fix("keep at least about 60% of the message text; use fewer, smaller images"),
            );
        }
        if html_size > GMAIL_CLIP {
            f.push(
                Finding::new("content.too-large", format!("the HTML is {} KB; Gmail clips messages over 102 KB and hides the rest, unsubscribe link included", html_size / 1024))
                    .fix("trim the HTML: inline CSS once, fewer nested tables"),
            );
        }
        if facts.scripts > 0 {
            f.push(Finding::new("content.script", format!("the HTML has {} <script> element(s); no mail client runs them and filters treat them as an attack", facts.scripts)).fix("remove all scripts"));
        }
        if facts.forms > 0 {
            f.push(
                Finding::new(
                    "content.form",
                    "the HTML has a <form>: forms in mail are how credentials get phished",
                )
                .fix("link to a page on your site instead"),
            );
        }
        if facts.objects > 0 {
            f.push(Finding::new("content.embedded-object", format!("the HTML has {} <iframe>, <object> or <embed> element(s), which mail clients block", facts.objects)).fix("show the content (a video, a map) as an image with a link instead"));
        }
    }

    // Every link: the HTML's with their text, then URLs in the text part.
    let mut links: Vec<(String, Option<String>)> = facts
        .links
        .iter()
        .map(|l| (l.href.clone(), Some(l.text.clone())))
        .collect();
    links.extend(text_urls(&plain).into_iter().map(|u| (u, None)));
    let (mut http, mut short, mut ip, mut mismatch) = (
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
        Vec::new(),
    );
    let mut hosts: Vec<String> = Vec::new();
    for (href, text) in &links {
        let Some(t) = target(href) else { continue };
        let name = match &t.host {
            LinkHost::Ip(a) => {
                ip.insert(a.to_string());
                continue;
            }
            LinkHost::Name(n) => n.clone(),
        };
        if !t.https {
            http.insert(name.clone());
        }
        if is_shortener(&name) {
            short.insert(name.clone());
        }
        if let Some(shown) = text.as_deref().and_then(shown_domain) {
            if !same_org(&shown, &name) && mismatch.len() < 10 {
                mismatch.push(format!("\"{shown}\" goes to {name}"));
            }
        }
        if !hosts.contains(&name) {
            hosts.push(name);
        }
    }
    if !mismatch.is_empty() {
        f.push(
            Finding::new(
                "content.link-text-mismatch",
                format!(
                    "link text shows one domain and the link goes to another: {}",
                    list(&mismatch, 3)
                ),
            )
            .fix("make the text of a link either plain words or the real address it goes to"),
        );
    }
    if !short.is_empty() {
        let v: Vec<String> = short.into_iter().collect();
        f.push(Finding::new("content.shortener", format!("links go through URL shorteners ({}); spammers use them to hide where links go", list(&v, 3))).fix("link to your own domain directly"));
    }
    if !http.is_empty() {
        let v: Vec<String> = http.into_iter().collect();
        f.push(
            Finding::new(
                "content.http-link",
                format!("links use plain http: ({})", list(&v, 3)),
            )
            .fix("use https: links"),
        );
    }
    if !ip.is_empty() {
        let v: Vec<String> = ip.into_iter().collect();
        f.push(
            Finding::new(
                "content.ip-link",
                format!(
                    "links go to bare IP addresses ({}), as phishing links do",
                    list(&v, 3)
                ),
            )
            .fix("link to a name in your own domain"),
        );
    }
    let related_orgs: HashSet<String> = related.iter().map(|d| org_domain(d)).collect();
    let mut unrelated: Vec<String> = hosts
        .iter()
        .map(|h| org_domain(h))
        .filter(|o| !related_orgs.contains(o))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    unrelated.retain(|o| !is_shortener(o));
    if !unrelated.is_empty() && !related_orgs.is_empty() {
        f.push(
            Finding::new("content.unrelated-links", format!("links go to domains unrelated to the sender: {}", list(&unrelated, 5)))
                .fix("link through your own domain (a tracking subdomain such as links.yourdomain), so that the links build your reputation"),
        );
    }

    let mut risky = Vec::new();
    for a in msg.attachments() {
        let name = a.attachment_name().unwrap_or("").to_ascii_lowercase();
        let ext = name
            .rsplit_once('.')
            .map(|(_, e)| e.trim().to_string())
            .unwrap_or_default();
        let ct = a
            .content_type()
            .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
            .unwrap_or_default()
            .to_ascii_lowercase();
        let exec_type = matches!(
            ct.as_str(),
            "application/x-msdownload"
                | "application/x-dosexec"
                | "application/x-msdos-program"
                | "application/hta"
                | "application/x-sh"
        );
        if RISKY.contains(&ext.as_str()) || exec_type {
            risky.push(if name.is_empty() { ct } else { name });
        }
    }
    if !risky.is_empty() {
        f.push(
            Finding::new(
                "content.risky-attachment",
                format!(
                    "attachments of a type that carries malware: {}; Gmail and Outlook block them",
                    list(&risky, 3)
                ),
            )
            .fix("send a link to the file on your site instead, or a PDF"),
        );
    }
    out.link_hosts = hosts;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn ids(raw: &str, related: &[&str]) -> Vec<&'static str> {
        let m = MessageParser::default().parse(raw.as_bytes()).unwrap();
        let rel: Vec<String> = related.iter().map(|s| s.to_string()).collect();
        check_content(&m, &rel)
            .findings
            .into_iter()
            .map(|f| f.id)
            .collect()
    }

    const WORDS: &str = "Our autumn newsletter tells you about the new opening hours of the shop, the prices for the winter season, and the people who joined our team this month.";

    #[test]
    fn a_good_alternative_passes() {
        let m = format!(
            "From: a@example.com\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n{WORDS} https://www.example.com/x\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>{WORDS}</p><a href=\"https://www.example.com/x\">www.example.com</a>\r\n--b--\r\n"
        );
        assert!(
            ids(&m, &["example.com"]).is_empty(),
            "{:?}",
            ids(&m, &["example.com"])
        );
    }

    #[test]
    fn each_content_defect() {
        let html = |body: &str| {
            format!("From: a@example.com\r\nContent-Type: text/html\r\n\r\n{body}\r\n")
        };
        assert_eq!(
            ids(&html(&format!("<p>{WORDS}</p>")), &["example.com"]),
            vec!["content.no-text-part"]
        );
        assert!(ids(
            &html("<img src='https://www.example.com/a.png'>"),
            &["example.com"]
        )
        .contains(&"content.image-only"));
        let i = ids(&html(&format!("<p>{WORDS}</p><script>x</script><form></form><iframe></iframe><a href='http://evil.example.net/'>www.example.com</a><a href='https://bit.ly/x'>go</a><a href='http://192.0.2.1/'>x</a>")), &["example.com"]);
        for want in [
            "content.script",
            "content.form",
            "content.embedded-object",
            "content.link-text-mismatch",
            "content.shortener",
            "content.http-link",
            "content.ip-link",
            "content.unrelated-links",
        ] {
            assert!(i.contains(&want), "{want}: {i:?}");
        }
        let big = html(&format!("<p>{WORDS}</p>{}", "<div></div>".repeat(10_000)));
        assert!(ids(&big, &["example.com"]).contains(&"content.too-large"));
        let mismatch = format!(
            "From: a@example.com\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nView this mail in a browser.\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>{WORDS}</p>\r\n--b--\r\n"
        );
        assert_eq!(
            ids(&mismatch, &["example.com"]),
            vec!["content.text-html-mismatch"]
        );
        let att = "From: a@example.com\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"invoice.pdf.exe\"\r\n\r\nMZ\r\n--b--\r\n";
        assert_eq!(ids(att, &["example.com"]), vec!["content.risky-attachment"]);
        assert_eq!(
            ids("From: a@example.com\r\n\r\n", &[]),
            vec!["content.no-body"]
        );
    }
}
