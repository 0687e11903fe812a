//! The HTML of the web UI: server-rendered pages, one style sheet and one
//! small script, all served by the binary (no framework, nothing from the
//! network). Everything that comes from a user, a message or DNS goes
//! through `escape`.

use crate::store::{DomainRow, KeyRow, TestRow};
use std::fmt::Write;

pub use netjes_analyze::html_report::escape;

pub const SCRIPT: &str = include_str!("static/netjes.js");
const OWN_STYLE: &str = include_str!("static/netjes.css");

pub fn style() -> String {
    format!("{}\n{OWN_STYLE}", netjes_analyze::html_report::STYLE)
}

/// Who is looking, for the navigation and the forms.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: Option<String>,
    /// The token every form of this page carries.
    pub csrf: String,
}

pub fn csrf_field(v: &Viewer) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(&v.csrf)
    )
}

pub fn layout(title: &str, v: &Viewer, body: &str, head: &str) -> String {
    let account = match &v.user {
        Some(u) => format!(
            "<a href=\"/domains\">Signing domains</a><form method=\"post\" action=\"/logout\" class=\"inline\">{}<button class=\"link\" id=\"logout\">Log out {}</button></form>",
            csrf_field(v),
            escape(u)
        ),
        None => "<a href=\"/login\" id=\"login-link\">Log in</a>".into(),
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{} · netjes</title><link rel=\"stylesheet\" href=\"/static/netjes.css\"><script src=\"/static/netjes.js\" defer></script>{head}</head>\
<body><nav><a href=\"/\" class=\"brand\">netjes</a><a href=\"/\">New test</a><a href=\"/check\">Check a domain</a><a href=\"/analyze\">Analyze a message</a><span class=\"spacer\"></span>{account}</nav><main>{body}</main>\
<footer>netjes: SPF, DKIM, DMARC and a test inbox, in one binary.</footer></body></html>",
        escape(title)
    )
}

pub fn home(v: &Viewer, test_domain: &str) -> String {
    let body = format!(
        "<section class=\"hero\"><h1>Why does my mail land in spam?</h1><p>Send a message to a test address and get a mark out of 10, with what to fix: \
authentication (SPF, DKIM, DMARC), the headers, the content, the links and the route.</p>\
<form method=\"post\" action=\"/tests\">{}<button id=\"new-test\">New test</button></form><p class=\"muted\">Test addresses are at {}.</p></section>\
<section><h2>Check a domain</h2><form method=\"get\" action=\"/check\"><input name=\"domain\" placeholder=\"example.com\" required> <button>Check</button></form></section>",
        csrf_field(v),
        escape(test_domain)
    );
    layout("New test", v, &body, "")
}

pub fn test_page(v: &Viewer, t: &TestRow) -> String {
    let mut b = String::new();
    match t.status.as_str() {
        "waiting" | "analyzing" => {
            let _ = write!(
                b,
                "<section id=\"waiting\" data-test=\"{id}\"><h1>Send your message to</h1><p class=\"address\"><code id=\"address\">{addr}</code> <button type=\"button\" data-copy=\"address\">Copy</button></p>\
<p>Send it the way your real mail goes out (your server, your application, your provider), then wait here: the result appears by itself.</p>\
<p class=\"muted\">Status: <span id=\"status\">{status}</span>. This address takes one message and expires {exp}.</p></section>",
                id = escape(&t.id),
                addr = escape(&t.address),
                status = escape(&t.status),
                exp = escape(&date(t.expires))
            );
            let head = "<noscript><meta http-equiv=\"refresh\" content=\"5\"></noscript>";
            return layout("Waiting for your message", v, &b, head);
        }
        "expired" => {
            let _ = write!(b, "<section><h1>This test has expired</h1><p>No message reached <code>{}</code> in time.</p><form method=\"post\" action=\"/tests\">{}<button>New test</button></form></section>", escape(&t.address), csrf_field(v));
        }
        _ => {
            if let Some(f) = &t.facts {
                let tls = match (f["tls_version"].as_str(), f["tls_cipher"].as_str()) {
                    (Some(v), Some(c)) => format!("{} ({})", v, c),
                    _ => "none (plain SMTP)".into(),
                };
                let _ = write!(
                    b,
                    "<section class=\"facts\"><h2>The SMTP session</h2><table><tr><th>Client</th><td>{}</td></tr><tr><th>HELO</th><td>{}</td></tr><tr><th>MAIL FROM</th><td>{}</td></tr><tr><th>TLS</th><td>{}</td></tr></table></section>",
                    escape(f["ip"].as_str().unwrap_or("")),
                    escape(f["helo"].as_str().unwrap_or("")),
                    escape(f["mail_from"].as_str().unwrap_or("")),
                    escape(&tls)
                );
            }
            let _ = write!(
                b,
                "<div id=\"report\">{}</div>",
                t.report_html.as_deref().unwrap_or("")
            );
            if let Some(raw) = &t.raw {
                let text = String::from_utf8_lossy(raw);
                let _ = write!(b, "<section><h2>The message as received</h2><details><summary>Show the raw message</summary><pre class=\"raw\">{}</pre></details>", escape(&text));
                if let Some(html) = rendered_view(raw) {
                    // A sandboxed frame without scripts; the page's CSP
                    // (no remote images) applies to it too, so opening the
                    // result does not tell the sender.
                    let _ = write!(b, "<details><summary>Show it rendered</summary><iframe sandbox title=\"rendered message\" class=\"rendered\" srcdoc=\"{}\"></iframe></details>", escape(&html));
                }
                b.push_str("</section>");
            }
        }
    }
    layout("Test result", v, &b, "")
}

/// The message's HTML part, or its text part as HTML.
fn rendered_view(raw: &[u8]) -> Option<String> {
    let m = mail_parser::MessageParser::default().parse(raw)?;
    if let Some(h) = m.body_html(0) {
        return Some(h.into_owned());
    }
    m.body_text(0)
        .map(|t| format!("<pre style=\"white-space:pre-wrap\">{}</pre>", escape(&t)))
}

fn status_class(s: &str) -> &'static str {
    match s {
        "pass" => "pass",
        "warn" => "warn",
        "fail" => "fail",
        "error" => "error",
        _ => "info",
    }
}

pub fn check_form(domain: &str) -> String {
    format!("<section><h1>Check a domain</h1><p>MX, reverse DNS, SPF with its lookup count, DKIM, DMARC, MTA-STS, TLS-RPT, BIMI and blocklists, each finding with the record to publish.</p><form method=\"get\" action=\"/check\"><input name=\"domain\" id=\"domain\" value=\"{}\" placeholder=\"example.com\" required> <button id=\"check\">Check</button></form></section>", escape(domain))
}

/// The domain check's report (the JSON of `netjes check --json`).
pub fn check_report(v: &Viewer, r: &serde_json::Value) -> String {
    let domain = r["domain"].as_str().unwrap_or("");
    // No score (a domain that does not exist, nothing checked) is said in
    // words, never shown as 0.0 or as a green mark.
    let score = match (r["score"].as_f64(), r["verdict"].as_str()) {
        (Some(v), Some(word)) => format!("{v:.1}/10 {word}"),
        _ => "no score".into(),
    };
    let mut b = check_form(domain);
    let _ = write!(b, "<section id=\"check-report\"><h2><span>{}</span><span class=\"score\">{}</span></h2>", escape(domain), escape(&score));
    if let Some(n) = r["input_note"].as_str() {
        let _ = write!(b, "<p class=\"muted\">Checked {}: {}</p>", escape(domain), escape(n));
    }
    if let Some(h) = r["headline"].as_str() {
        let _ = write!(b, "<p class=\"headline\">{}</p>", escape(h));
    }
    if r["complete"] == false && r["score"].is_number() {
        b.push_str("<p class=\"muted\">Incomplete: some checks could not run, and count as failed until they can.</p>");
    }
    for why in r["capped_by"].as_array().into_iter().flatten() {
        let _ = write!(b, "<p class=\"muted\">Held down by: {}</p>", escape(why.as_str().unwrap_or("")));
    }
    b.push_str("<div class=\"scores\">");
    for s in r["scores"].as_array().into_iter().flatten() {
        let value = s["score"]
            .as_f64()
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "not checked".into());
        let _ = write!(
            b,
            "<span class=\"chip\">{} {}</span>",
            escape(s["category"].as_str().unwrap_or("")),
            escape(&value)
        );
    }
    b.push_str("</div>");
    for (i, f) in r["findings"].as_array().into_iter().flatten().enumerate() {
        let status = f["status"].as_str().unwrap_or("info");
        let _ = write!(
            b,
            "<div class=\"finding {}\"><div><span class=\"badge\">{}</span> <code>{}</code></div><div>{}</div>",
            status_class(status),
            escape(status),
            escape(f["id"].as_str().unwrap_or("")),
            escape(f["message"].as_str().unwrap_or(""))
        );
        if let Some(a) = f["advice"].as_str() {
            let _ = write!(b, "<div class=\"muted\">{}</div>", escape(a));
        }
        if let Some(fix) = f.get("fix").filter(|x| !x.is_null()) {
            // Name, value and the one absolute zone-file line, as the
            // signing-domain page shows a key (an MX value is never quoted).
            let _ = write!(
                b,
                "<div class=\"record\"><div>Name <code>{}</code> type <code>{}</code> value <code id=\"fix-{i}-value\">{}</code> <button type=\"button\" data-copy=\"fix-{i}-value\">Copy</button></div><div>Zone file <code id=\"fix-{i}\">{}</code> <button type=\"button\" data-copy=\"fix-{i}\">Copy</button></div></div>",
                escape(fix["name"].as_str().unwrap_or("")),
                escape(fix["type"].as_str().unwrap_or("")),
                escape(fix["value"].as_str().unwrap_or("")),
                escape(fix["zone_line"].as_str().unwrap_or(""))
            );
        }
        b.push_str("</div>");
    }
    b.push_str("</section>");
    layout(&format!("Check {domain}"), v, &b, "")
}

pub fn analyze_form(v: &Viewer) -> String {
    let body = format!(
        "<section><h1>Analyze a message</h1><p>Paste a message with its headers (in Gmail: Show original; in Outlook: View source), or upload an .eml file.</p>\
<form method=\"post\" action=\"/analyze\" enctype=\"multipart/form-data\">{}<textarea name=\"message\" rows=\"14\" placeholder=\"Received: ...&#10;From: ...\"></textarea>\
<p><input type=\"file\" name=\"file\" accept=\".eml,message/rfc822,text/plain\"></p><button id=\"analyze\">Analyze</button></form></section>",
        csrf_field(v)
    );
    layout("Analyze a message", v, &body, "")
}

pub fn analyze_report(v: &Viewer, html: &str) -> String {
    layout(
        "Analysis",
        v,
        &format!("<div id=\"report\">{html}</div>"),
        "",
    )
}

pub fn login(v: &Viewer, next: &str, error: Option<&str>) -> String {
    let err = error
        .map(|e| format!("<p class=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<section class=\"narrow\"><h1>Log in</h1>{err}<form method=\"post\" action=\"/login\">{}<input type=\"hidden\" name=\"next\" value=\"{}\">\
<label>User <input name=\"user\" id=\"user\" autocomplete=\"username\" required></label><label>Password <input type=\"password\" name=\"password\" id=\"password\" autocomplete=\"current-password\" required></label>\
<button id=\"login\">Log in</button></form></section>",
        csrf_field(v),
        escape(next)
    );
    layout("Log in", v, &body, "")
}

pub fn error(v: &Viewer, status: u16, message: &str) -> String {
    layout(
        "Error",
        v,
        &format!(
            "<section><h1>{status}</h1><p class=\"error\">{}</p></section>",
            escape(message)
        ),
        "",
    )
}

pub fn date(t: i64) -> String {
    mail_parser::DateTime::from_timestamp(t).to_rfc822()
}

/// The record twice: name and value for a DNS provider's web form, and
/// the line for a zone file.
fn record_block(k: &KeyRow) -> String {
    let id = k.id;
    format!(
        "<div class=\"record\"><div class=\"muted\">Name</div><code id=\"name-{id}\">{name}</code> <button type=\"button\" data-copy=\"name-{id}\">Copy</button>\
<div class=\"muted\">Type TXT, value</div><code id=\"value-{id}\" class=\"value\">{value}</code> <button type=\"button\" data-copy=\"value-{id}\">Copy</button>\
<div class=\"muted\">Zone file (BIND)</div><code id=\"zone-{id}\" class=\"zone\">{zone}</code> <button type=\"button\" data-copy=\"zone-{id}\">Copy</button></div>",
        name = escape(&k.dns_name()),
        value = escape(&k.dns_value()),
        zone = escape(&k.zone_line()),
    )
}

/// The signing domains, each with a warning when it is active but its
/// key is not what DNS publishes.
pub fn domains(v: &Viewer, list: &[(DomainRow, Vec<String>)], error: Option<&str>) -> String {
    let mut b = String::from("<section><h1>Signing domains</h1><p>The milter (<code>netjes milter --key-store DIR</code>) signs mail from active domains with their active keys, from the next message on.</p>");
    if let Some(e) = error {
        let _ = write!(b, "<p class=\"error\">{}</p>", escape(e));
    }
    b.push_str("<table id=\"domains\"><tr><th>Domain</th><th>Selectors</th><th>State</th><th>Created</th><th>Rotated</th></tr>");
    for (d, warnings) in list {
        let sel: Vec<String> = d
            .keys
            .iter()
            .filter(|k| k.state == "active")
            .map(|k| format!("{} ({})", k.selector, k.algorithm.k_tag()))
            .collect();
        let rotated = d
            .keys
            .iter()
            .filter_map(|k| k.rotated)
            .max()
            .map(date)
            .unwrap_or_default();
        let _ = write!(
            b,
            "<tr><td><a href=\"/domains/{0}\">{0}</a>{3}</td><td>{1}</td><td>{2}</td><td>{4}</td><td>{5}</td></tr>",
            escape(&d.domain),
            escape(&sel.join(", ")),
            if d.active { "<span class=\"badge pass\">active</span>" } else { "<span class=\"badge info\">inactive</span>" },
            warnings.iter().map(|w| format!("<div class=\"warn-text\">⚠ {}</div>", escape(w))).collect::<String>(),
            escape(&date(d.created)),
            escape(&rotated)
        );
    }
    b.push_str("</table></section>");
    let _ = write!(
        b,
        "<section><h2>Add a signing domain</h2><form method=\"post\" action=\"/domains\" class=\"grid\">{}\
<label>Domain <input name=\"domain\" id=\"new-domain\" placeholder=\"customer.example\" required></label>\
<label>Selector <input name=\"selector\" id=\"new-selector\" value=\"{}\" required></label>\
<label>Key <select name=\"algorithm\" id=\"new-algorithm\"><option value=\"rsa\">RSA 2048</option><option value=\"ed25519\">Ed25519</option><option value=\"both\">both (two selectors)</option></select></label>\
<details><summary>Or import a private key (PEM, PKCS#8 or PKCS#1; encrypted PKCS#8 with its password)</summary><textarea name=\"pem\" rows=\"6\"></textarea><label>Password <input type=\"password\" name=\"password\" autocomplete=\"off\"></label></details>\
<button id=\"add-domain\">Add and generate the key</button></form></section>",
        csrf_field(v),
        escape(&default_selector())
    );
    layout("Signing domains", v, &b, "")
}

/// A selector named by the month, as many operators do: s202611.
pub fn default_selector() -> String {
    let d = mail_parser::DateTime::from_timestamp(crate::store::now());
    format!("s{}{:02}", d.year, d.month)
}

/// One signing domain: its keys with their records, the DNS check, rotation.
pub fn domain(
    v: &Viewer,
    d: &DomainRow,
    checks: &[(i64, netjes_check::dkim::KeyTest)],
    message: Option<&str>,
) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<section><h1>{}</h1><p>{} · created {}</p>",
        escape(&d.domain),
        if d.active {
            "<span class=\"badge pass\" id=\"domain-state\">active</span>"
        } else {
            "<span class=\"badge info\" id=\"domain-state\">inactive</span>"
        },
        escape(&date(d.created))
    );
    if let Some(m) = message {
        let _ = write!(b, "<p class=\"notice\">{}</p>", escape(m));
    }
    let csrf = csrf_field(v);
    let _ = write!(
        b,
        "<div class=\"actions\"><form method=\"post\" action=\"/domains/{0}/active\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"active\" value=\"{1}\"><button id=\"toggle-active\">{2}</button></form>\
<form method=\"post\" action=\"/domains/{0}/check\" class=\"inline\">{csrf}<button id=\"check-dns\">Check DNS</button></form></div></section>",
        escape(&d.domain),
        if d.active { "false" } else { "true" },
        if d.active { "Deactivate" } else { "Activate" }
    );
    for k in &d.keys {
        let _ = write!(
            b,
            "<section class=\"key {state}\" id=\"key-{id}\"><h2><span>{sel} · {alg} {bits}</span><span class=\"badge {cls}\">{state}</span></h2>{rec}",
            state = escape(&k.state),
            id = k.id,
            sel = escape(&k.selector),
            alg = k.algorithm.k_tag(),
            bits = k.bits,
            cls = if k.state == "active" { "pass" } else if k.state == "pending" { "warn" } else { "info" },
            rec = record_block(k)
        );
        if let Some((_, t)) = checks.iter().find(|(id, _)| *id == k.id) {
            let cls = match t.status {
                netjes_check::dkim::KeyStatus::Ok => "pass",
                netjes_check::dkim::KeyStatus::DnsError => "warn",
                _ => "fail",
            };
            let _ = write!(
                b,
                "<p class=\"dns-check {cls}\" id=\"dns-{}\">{}</p>",
                k.id,
                escape(&t.message)
            );
            for w in &t.warnings {
                let _ = write!(b, "<p class=\"warn-text\">⚠ {}</p>", escape(w));
            }
        }
        if k.state == "pending" {
            let _ = write!(
                b,
                "<p>Publish this record, wait for it to be seen, then switch. Keep the old record published for a few days after, for mail still on its way.</p>\
<form method=\"post\" action=\"/keys/{}/switch\" class=\"inline\">{csrf}<button>Switch to this key</button></form>",
                k.id
            );
        }
        if k.state != "active" {
            let _ = write!(b, " <form method=\"post\" action=\"/keys/{}/delete\" class=\"inline\">{csrf}<button class=\"danger\">Delete this key</button></form>", k.id);
        }
        b.push_str("</section>");
    }
    let _ = write!(
        b,
        "<section><h2>Rotate</h2><p>Makes a new key under a new selector for each algorithm in use. Both records show here until you switch.</p>\
<form method=\"post\" action=\"/domains/{0}/rotate\">{csrf}<label>New selector <input name=\"selector\" value=\"{1}\" required></label> <button id=\"rotate\">Make the new key</button></form></section>\
<section><form method=\"post\" action=\"/domains/{0}/delete\">{csrf}<button class=\"danger\">Delete this domain and its keys</button></form></section>",
        escape(&d.domain),
        escape(&format!("{}b", default_selector()))
    );
    layout(&d.domain, v, &b, "")
}
