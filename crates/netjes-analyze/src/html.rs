//! A tolerant scan of an HTML body for what spam filters look at: links
//! with their text, images, scripts, forms and embedded objects, and the
//! text a reader sees. Mail HTML is rarely well formed (Outlook's output is
//! the classic), so this never fails: anything that is not a tag is text.
//!
//! It is not an HTML5 parser; it only has to find the same tags a filter
//! finds, in linear time, with bounded output.

use serde::Serialize;

/// At most this many links are kept; the rest are counted.
pub const MAX_LINKS: usize = 500;
/// At most this much visible text is kept, for the text/HTML comparison.
pub const MAX_TEXT: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    pub href: String,
    /// The text between <a> and </a>, whitespace collapsed.
    pub text: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HtmlFacts {
    pub links: Vec<Link>,
    /// Links beyond [`MAX_LINKS`].
    pub links_dropped: usize,
    pub images: usize,
    /// <script> elements, inline or with src=.
    pub scripts: usize,
    pub forms: usize,
    /// <iframe>, <object>, <embed>.
    pub objects: usize,
    /// What a reader sees, whitespace collapsed.
    pub text: String,
}

/// Decodes the character references that matter for reading text and URLs.
pub fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|e| e + 1)
            .unwrap_or(rest.len());
        let name = &rest[1..end];
        let decoded = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32),
            n if n.starts_with('#') => n[1..].parse::<u32>().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end..];
                if rest.starts_with(';') {
                    rest = &rest[1..];
                }
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

struct Tag<'a> {
    name: String,
    closing: bool,
    attrs: Vec<(String, &'a str)>,
}

impl Tag<'_> {
    fn attr(&self, name: &str) -> Option<String> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| decode_entities(v.trim()))
    }
}

/// Reads a tag starting after '<'; returns it and the index after '>'.
fn read_tag(s: &str, start: usize) -> (Tag<'_>, usize) {
    let b = s.as_bytes();
    let mut i = start;
    let closing = b.get(i) == Some(&b'/');
    if closing {
        i += 1;
    }
    let name_start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-' || b[i] == b':') {
        i += 1;
    }
    let name = s[name_start..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return (
                Tag {
                    name,
                    closing,
                    attrs,
                },
                i,
            );
        }
        if b[i] == b'>' {
            return (
                Tag {
                    name,
                    closing,
                    attrs,
                },
                i + 1,
            );
        }
        let an = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        // A stray '=' or other byte that starts no name: step over it.
        let attr_name = s[an..i].to_ascii_lowercase();
        if i == an {
            i += 1;
            continue;
        }
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if b.get(i) != Some(&b'=') {
            attrs.push((attr_name, ""));
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match b.get(i) {
            Some(q @ (b'"' | b'\'')) => {
                let q = *q;
                let vs = i + 1;
                let ve = b[vs..]
                    .iter()
                    .position(|c| *c == q)
                    .map(|p| vs + p)
                    .unwrap_or(b.len());
                i = (ve + 1).min(b.len());
                &s[vs..ve]
            }
            _ => {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                &s[vs..i]
            }
        };
        attrs.push((attr_name, value));
    }
}

fn find_ci(hay: &str, from: usize, needle: &str) -> Option<usize> {
    let h = hay.as_bytes();
    let n = needle.as_bytes();
    if from >= h.len() {
        return None;
    }
    h[from..]
        .windows(n.len())
        .position(|w| w.eq_ignore_ascii_case(n))
        .map(|p| from + p)
}

fn push_text(out: &mut String, text: &str) {
    for word in text.split_whitespace() {
        if out.len() + word.len() + 1 > MAX_TEXT {
            return;
        }
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push_str(word);
    }
    if text.ends_with(char::is_whitespace) && !out.is_empty() && !out.ends_with(' ') {
        out.push(' ');
    }
}

/// Scans an HTML body.
pub fn scan(html: &str) -> HtmlFacts {
    let mut f = HtmlFacts::default();
    let mut open_link: Option<usize> = None;
    let mut i = 0;
    let b = html.as_bytes();
    while i < b.len() {
        let Some(lt) = html[i..].find('<').map(|p| p + i) else {
            add_text(&mut f, open_link, &html[i..]);
            break;
        };
        add_text(&mut f, open_link, &html[i..lt]);
        let next = b.get(lt + 1).copied();
        if html[lt..].starts_with("<!--") {
            i = html[lt + 4..]
                .find("-->")
                .map(|p| lt + 4 + p + 3)
                .unwrap_or(b.len());
            continue;
        }
        match next {
            Some(c) if c.is_ascii_alphabetic() || c == b'/' => {}
            Some(b'!' | b'?') => {
                i = html[lt..].find('>').map(|p| lt + p + 1).unwrap_or(b.len());
                continue;
            }
            _ => {
                // A lone '<' is text ("a < b").
                add_text(&mut f, open_link, "<");
                i = lt + 1;
                continue;
            }
        }
        let (tag, after) = read_tag(html, lt + 1);
        i = after;
        match (tag.name.as_str(), tag.closing) {
            ("a", false) => {
                open_link = None;
                if let Some(href) = tag.attr("href") {
                    if f.links.len() < MAX_LINKS {
                        f.links.push(Link {
                            href,
                            text: String::new(),
                        });
                        open_link = Some(f.links.len() - 1);
                    } else {
                        f.links_dropped += 1;
                    }
                }
            }
            ("a", true) => open_link = None,
            ("img", false) => f.images += 1,
            ("form", false) => f.forms += 1,
            ("iframe" | "object" | "embed", false) => f.objects += 1,
            ("script" | "style" | "title", false) => {
                if tag.name == "script" {
                    f.scripts += 1;
                }
                // Raw text: nothing inside is a tag or shown text.
                let close = format!("</{}", tag.name);
                i = match find_ci(html, i, &close) {
                    Some(p) => html[p..].find('>').map(|q| p + q + 1).unwrap_or(b.len()),
                    None => b.len(),
                };
            }
            ("br" | "p" | "div" | "td" | "tr" | "li" | "h1" | "h2" | "h3" | "table", _) => {
                add_text(&mut f, None, " ")
            }
            _ => {}
        }
    }
    for l in &mut f.links {
        l.text = l.text.trim().to_string();
    }
    let t = f.text.trim().to_string();
    f.text = t;
    f
}

fn add_text(f: &mut HtmlFacts, link: Option<usize>, raw: &str) {
    if raw.is_empty() {
        return;
    }
    let text = decode_entities(raw);
    push_text(&mut f.text, &text);
    if let Some(l) = link.and_then(|i| f.links.get_mut(i)) {
        if l.text.len() < 1024 {
            push_text(&mut l.text, &text);
        }
    }
}

/// http(s) URLs written out in plain text, for the links of a text/plain
/// part. A URL ends at whitespace or at the brackets and quotes that
/// commonly surround one.
pub fn text_urls(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = text.to_ascii_lowercase();
    let mut from = 0;
    while let Some(p) = lower[from..].find("http").map(|p| p + from) {
        let rest = &lower[p..];
        if rest.starts_with("http://") || rest.starts_with("https://") {
            let end = text[p..]
                .find(|c: char| {
                    c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | ')' | ']')
                })
                .map(|e| p + e)
                .unwrap_or(text.len());
            out.push(
                text[p..end]
                    .trim_end_matches(['.', ',', ';', ':', '!', '?'])
                    .to_string(),
            );
            if out.len() >= MAX_LINKS {
                break;
            }
            from = end;
        } else {
            from = p + 4;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_images_and_text() {
        let f = scan(
            r#"<html><head><title>T</title><style>p{color:red}</style></head><body>
<p>Hello &amp; welcome</p><a HREF="https://example.com/a?x=1&amp;y=2">Visit <b>us</b></a>
<img src=cid:1><img src='x.png'><!-- <a href="http://hidden"> --><script src="https://cdn.example/x.js"></script>
<script>var a = "<a href='http://x'>";</script><form action="https://evil.example/"><input></form>
<a href=http://plain.example/>www.bank.example</a> 3 < 4 <iframe src=x></iframe><a name=top>anchor</a></body></html>"#,
        );
        assert_eq!(f.links.len(), 2, "{:?}", f.links);
        assert_eq!(
            f.links[0],
            Link {
                href: "https://example.com/a?x=1&y=2".into(),
                text: "Visit us".into()
            }
        );
        assert_eq!(
            f.links[1],
            Link {
                href: "http://plain.example/".into(),
                text: "www.bank.example".into()
            }
        );
        assert_eq!((f.images, f.scripts, f.forms, f.objects), (2, 2, 1, 1));
        assert_eq!(
            f.text,
            "Hello & welcome Visit us www.bank.example 3 < 4 anchor"
        );
    }

    #[test]
    fn broken_html_never_fails() {
        for s in [
            "<",
            "<a",
            "<a href=",
            "<a href=\"x",
            "<script>",
            "&#xFFFFFFFF;",
            "&",
            "<!--",
            "<a href='x'>text",
            "</>",
            "<=>",
        ] {
            let _ = scan(s);
        }
        assert_eq!(scan("<a href='x'>text").links[0].text, "text");
        assert_eq!(decode_entities("&#65;&#x42;&lt&bogus;"), "AB<&bogus;");
    }

    #[test]
    fn urls_in_plain_text() {
        assert_eq!(
            text_urls("See https://example.com/x. Or (http://b.example/y) and <https://c.example>, httpx no"),
            vec!["https://example.com/x", "http://b.example/y", "https://c.example"]
        );
    }
}
