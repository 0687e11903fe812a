//! `--html FILE`: the report as one self-contained page (no scripts, no
//! fonts or styles from the network), readable by someone who is not a
//! postmaster. Everything from the message is escaped.

use crate::Report;
use std::fmt::Write;

pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn colour(score: f32) -> &'static str {
    if score >= 8.0 {
        "#1a7f37"
    } else if score >= 5.0 {
        "#b76e00"
    } else {
        "#c62828"
    }
}

/// A half-circle gauge of the mark, in SVG.
fn gauge(score: f32) -> String {
    let frac = (score / 10.0).clamp(0.0, 1.0);
    let angle = std::f32::consts::PI * (1.0 - frac);
    let (x, y) = (100.0 + 80.0 * angle.cos(), 100.0 - 80.0 * angle.sin());
    format!(
        r##"<svg viewBox="0 0 200 120" width="240" role="img" aria-label="score {score:.1} out of 10"><path d="M20 100 A80 80 0 0 1 180 100" fill="none" stroke="#e3e3e3" stroke-width="18"/><path d="M20 100 A80 80 0 0 1 {x:.1} {y:.1}" fill="none" stroke="{c}" stroke-width="18"/><text x="100" y="95" text-anchor="middle" font-size="34" font-weight="700" fill="{c}">{score:.1}</text><text x="100" y="115" text-anchor="middle" font-size="12" fill="#555">out of 10</text></svg>"##,
        c = colour(score)
    )
}

pub const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d1d1f}main{max-width:900px;margin:auto;padding:24px}\
header{display:flex;gap:24px;align-items:center;flex-wrap:wrap;background:#fff;border-radius:10px;padding:16px 24px}\
section{background:#fff;border-radius:10px;padding:8px 24px 16px;margin-top:16px}h2{font-size:18px;display:flex;justify-content:space-between}\
.f{border-left:4px solid #ccc;padding:4px 12px;margin:8px 0}.f.bad{border-color:#c62828}.f.info{border-color:#888}.pen{font-weight:700;color:#c62828}\
.fix{font-family:ui-monospace,monospace;background:#f0f2f5;padding:2px 6px;border-radius:4px;word-break:break-all}.ok{color:#1a7f37}\
table{border-collapse:collapse;width:100%;font-size:13px}td,th{text-align:left;padding:4px 6px;border-bottom:1px solid #eee;vertical-align:top}\
.why{background:#fff4f4;border-radius:10px;padding:8px 24px;margin-top:16px}code{word-break:break-all}";

/// A title or fix as a sentence: a capital first.
fn sentence(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// A fix that is a DNS record or a header field to add, shown as code.
fn looks_like_a_record(fix: &str) -> bool {
    fix.contains(" IN TXT ")
        || fix.starts_with("v=")
        || fix.starts_with("List-Unsubscribe")
        || fix.starts_with("_dmarc.")
}

/// Renders the report as a page of its own.
pub fn render(r: &Report) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>netjes analyze: {:.1}/10</title><style>{STYLE}</style></head><body><main>{}<p style=\"color:#777;font-size:12px\">Made by netjes analyze.</p></main></body></html>\n",
        r.score,
        render_fragment(r)
    )
}

/// The report without the page around it, for `netjes serve`'s pages
/// (which load [`STYLE`] from their style sheet).
pub fn render_fragment(r: &Report) -> String {
    let mut h = String::new();
    // The score and its verdict word first.
    let _ = write!(
        h,
        "<header>{}<div><div class=\"verdict\" id=\"verdict\" style=\"font-size:20px;font-weight:700;color:{}\">{}</div><h1 style=\"margin:0;font-size:22px\">{}</h1>",
        gauge(r.score),
        colour(r.score),
        escape(r.verdict),
        escape(r.subject.as_deref().unwrap_or("(no subject)"))
    );
    let _ = write!(
        h,
        "<div>From: {}</div>",
        escape(r.from.as_deref().unwrap_or("(none)"))
    );
    let _ = write!(h, "<div>Envelope: {}</div>", escape(&r.envelope.source));
    if let Some(why) = &r.cap_reason {
        let _ = write!(h, "<div class=\"pen\">Held down: {}.</div>", escape(why));
    }
    if r.incomplete {
        h.push_str("<div>Incomplete: a DNS lookup failed; try again later.</div>");
    }
    h.push_str("</div></header>");
    if !r.why_spam.is_empty() {
        h.push_str("<div class=\"why\"><h2>Why this is spam</h2><ol>");
        for f in &r.why_spam {
            let _ = write!(
                h,
                "<li><span class=\"pen\">−{:.1}</span> {}</li>",
                f.penalty,
                escape(&f.explanation)
            );
        }
        h.push_str("</ol></div>");
    }
    for s in &r.sections {
        let _ = write!(h, "<section><h2><span>{}</span>", escape(s.title));
        let nothing_ran = s.checked.passed.is_empty() && !s.checked.not_checked.is_empty();
        if s.penalty > 0.0 {
            let _ = write!(h, "<span class=\"pen\">−{:.1}</span></h2>", s.penalty);
        } else if nothing_ran {
            // A check that did not run gets no tick.
            h.push_str("<span class=\"muted\">not checked</span></h2>");
        } else {
            h.push_str("<span class=\"ok\">✓</span></h2>");
        }
        for p in &s.checked.passed {
            let _ = write!(h, "<p class=\"ok\">✓ {}</p>", escape(p));
        }
        for n in &s.checked.not_checked {
            let _ = write!(h, "<p class=\"muted\">Not checked: {}</p>", escape(n));
        }
        if s.findings.is_empty() && !nothing_ran && s.checked.passed.is_empty() {
            h.push_str("<p class=\"ok\">Nothing to fix.</p>");
        }
        for f in &s.findings {
            let class = if f.penalty > 0.0 { "f bad" } else { "f info" };
            // A human title, the id in small print.
            let _ = write!(
                h,
                "<div class=\"{class}\"><div><strong>{}</strong>",
                escape(&sentence(crate::penalties::rule(f.id).title))
            );
            if f.penalty > 0.0 {
                let _ = write!(h, " <span class=\"pen\">−{:.1}</span>", f.penalty);
            }
            let _ = write!(
                h,
                " <small><code>{}</code></small></div><div>{}</div>",
                escape(f.id),
                escape(&f.explanation)
            );
            // Prose as prose; a record to publish or a header to add as code.
            if let Some(fix) = &f.fix {
                if looks_like_a_record(fix) {
                    let _ = write!(h, "<div>Publish: <span class=\"fix\">{}</span></div>", escape(fix));
                } else {
                    let _ = write!(h, "<div>What to do: {}</div>", escape(&sentence(fix)));
                }
            }
            h.push_str("</div>");
        }
        if s.section == crate::finding::Section::Received && !r.hops.is_empty() {
            h.push_str("<table><tr><th>#</th><th>from</th><th>by</th><th>with</th><th>TLS</th><th>time</th><th>delay</th></tr>");
            for hop in &r.hops {
                let from = match (&hop.from, hop.from_ip) {
                    (Some(n), Some(ip)) => format!("{n} [{ip}]"),
                    (Some(n), None) => n.clone(),
                    (None, Some(ip)) => format!("[{ip}]"),
                    (None, None) => String::new(),
                };
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    hop.index,
                    escape(&from),
                    escape(hop.by.as_deref().unwrap_or("")),
                    escape(hop.with.as_deref().unwrap_or("")),
                    escape(hop.tls.as_deref().unwrap_or("no")),
                    escape(hop.time.as_deref().unwrap_or("")),
                    hop.delay.map(|d| format!("{d}s")).unwrap_or_default()
                );
            }
            h.push_str("</table>");
        }
        if s.section == crate::finding::Section::Spamassassin {
            if let Some(sa) = &r.spamassassin {
                let _ = write!(h, "<p>Score {:.1} (spam from {:.1})</p><table><tr><th>points</th><th>rule</th><th>description</th></tr>", sa.score, sa.threshold);
                for rule in &sa.rules {
                    let _ = write!(
                        h,
                        "<tr><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
                        rule.points,
                        escape(&rule.name),
                        escape(&rule.description)
                    );
                }
                h.push_str("</table>");
            } else if let Some(e) = &r.spamassassin_error {
                let _ = write!(h, "<p>SpamAssassin could not be asked: {}</p>", escape(e));
            } else {
                h.push_str("<p>Not asked: no spamd is configured.</p>");
            }
        }
        h.push_str("</section>");
    }
    let _ = write!(
        h,
        "<section><h2>Authentication-Results</h2><p><code>{}</code></p></section>",
        escape(&r.auth.authentication_results)
    );
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes() {
        assert_eq!(
            super::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
