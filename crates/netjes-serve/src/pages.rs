//! The HTML of the web UI: server-rendered pages in maud templates, which
//! escape every value by default (a user's input, a message, a DNS answer
//! can never become markup), one style sheet and one small script, all
//! served by the binary (no framework, nothing from the network).
//!
//! The only markup that enters unescaped is the analyzer's report
//! fragment (netjes-analyze's html_report, which escapes what it shows)
//! and a message's own HTML, which goes into a sandboxed frame's srcdoc as
//! an attribute value, escaped.

use crate::store::{DomainRow, KeyRow, TestRow};
use maud::{html, Markup, PreEscaped, DOCTYPE};

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

fn csrf_field(v: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

/// A page around `body`; `refresh` adds a no-script reload (the waiting
/// test page).
pub fn page(title: &str, v: &Viewer, body: Markup, refresh: bool) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · netjes" }
                link rel="stylesheet" href="/static/netjes.css";
                script src="/static/netjes.js" defer {}
                @if refresh { noscript { meta http-equiv="refresh" content="5"; } }
            }
            body {
                nav {
                    a href="/" class="brand" { "netjes" }
                    a href="/" { "New test" }
                    a href="/check" { "Check a domain" }
                    a href="/analyze" { "Analyze a message" }
                    span class="spacer" {}
                    @match &v.user {
                        Some(u) => {
                            a href="/domains" { "Signing domains" }
                            a href="/reports" id="reports-link" { "Reports" }
                            form method="post" action="/logout" class="inline" {
                                (csrf_field(v))
                                button class="link" id="logout" { "Log out " (u) }
                            }
                        }
                        None => a href="/login" id="login-link" { "Log in" },
                    }
                }
                main { (body) }
                footer { "netjes: SPF, DKIM, DMARC and a test inbox, in one binary." }
            }
        }
    }
    .into_string()
}

/// A page around a body that is already markup (the error pages).
pub fn layout(title: &str, v: &Viewer, body: Markup) -> String {
    page(title, v, body, false)
}

pub fn home(v: &Viewer, test_domain: &str) -> String {
    let body = html! {
        section class="hero" {
            h1 { "Why does my mail land in spam?" }
            p { "Send a message to a test address and get a mark out of 10, with what to fix: authentication (SPF, DKIM, DMARC), the headers, the content, the links and the route." }
            form method="post" action="/tests" { (csrf_field(v)) button id="new-test" { "New test" } }
            p class="muted" { "Test addresses are at " (test_domain) "." }
        }
        section {
            h2 { "Check a domain" }
            form method="get" action="/check" {
                input name="domain" placeholder="example.com" required;
                " "
                button { "Check" }
            }
        }
    };
    page("New test", v, body, false)
}

/// A test: waiting for its message (with the command to send one when the
/// inbox listens on this machine only), expired, or its result.
pub fn test_page(v: &Viewer, t: &TestRow, local_smtp: Option<&str>) -> String {
    match t.status.as_str() {
        "waiting" | "analyzing" => {
            let body = html! {
                section id="waiting" data-test=(t.id) {
                    h1 { "Send your message to" }
                    p class="address" {
                        code id="address" { (t.address) }
                        " "
                        button type="button" data-copy="address" { "Copy" }
                    }
                    p { "Send it the way your real mail goes out (your server, your application, your provider), then wait here: the result appears by itself." }
                    @if let Some(smtp) = local_smtp {
                        p { "The test inbox listens on this machine only. To try it from here, with a From at your own domain:" }
                        pre class="command" { code id="local-command" { "swaks --server " (smtp) " --from you@your-domain.example --to " (t.address) } }
                    }
                    p class="muted" { "Status: " span id="status" { (t.status) } ". This address takes one message and expires " (date(t.expires)) "." }
                }
            };
            page("Waiting for your message", v, body, true)
        }
        "expired" => {
            let body = html! {
                section {
                    h1 { "This test has expired" }
                    p { "No message reached " code { (t.address) } " in time." }
                    form method="post" action="/tests" { (csrf_field(v)) button { "New test" } }
                }
            };
            page("Test result", v, body, false)
        }
        _ => page("Test result", v, result(t), false),
    }
}

fn result(t: &TestRow) -> Markup {
    let tls = t.facts.as_ref().map(|f| {
        match (f["tls_version"].as_str(), f["tls_cipher"].as_str()) {
            (Some(v), Some(c)) => format!("{v} ({c})"),
            _ => "none (plain SMTP)".into(),
        }
    });
    html! {
        // The mark and its verdict first, then how the message came.
        // The analyzer's fragment: it escapes everything it shows.
        div id="report" { (PreEscaped(t.report_html.as_deref().unwrap_or(""))) }
        @if let Some(f) = &t.facts {
            section class="facts" {
                h2 { "The SMTP session" }
                table {
                    tr { th { "Client" } td { (f["ip"].as_str().unwrap_or("")) } }
                    tr { th { "HELO" } td { (f["helo"].as_str().unwrap_or("")) } }
                    tr { th { "MAIL FROM" } td { (f["mail_from"].as_str().unwrap_or("")) } }
                    tr { th { "TLS" } td { (tls.clone().unwrap_or_default()) } }
                }
            }
        }
        @if let Some(raw) = &t.raw {
            section {
                h2 { "The message as received" }
                details { summary { "Show the raw message" } pre class="raw" { (String::from_utf8_lossy(raw)) } }
                @if let Some(view) = rendered_view(raw) {
                    // A sandboxed frame without scripts; the page's CSP (no
                    // remote images) applies to it too, so opening the
                    // result does not tell the sender.
                    details { summary { "Show it rendered" } iframe sandbox title="rendered message" class="rendered" srcdoc=(view) {} }
                }
            }
        }
    }
}

/// The message's HTML part, or its text part as HTML.
fn rendered_view(raw: &[u8]) -> Option<String> {
    let m = mail_parser::MessageParser::default().parse(raw)?;
    if let Some(h) = m.body_html(0) {
        return Some(h.into_owned());
    }
    m.body_text(0).map(|t| {
        html! { pre style="white-space:pre-wrap" { (t) } }.into_string()
    })
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

/// What the check form was given, to show it again with the report.
#[derive(Debug, Clone, Default)]
pub struct CheckFields {
    pub domain: String,
    pub selectors: String,
    pub ips: String,
    pub smtp: bool,
}

pub fn check_form(f: &CheckFields) -> Markup {
    html! {
        section {
            h1 { "Check a domain" }
            p { "MX, reverse DNS, SPF with its lookup count, DKIM, DMARC, MTA-STS, TLS-RPT, BIMI and blocklists, each finding with the record to publish. A name, a web address or an e-mail address will do." }
            form method="get" action="/check" class="grid" {
                label { "Domain " input name="domain" id="domain" value=(f.domain) placeholder="example.com" required; }
                label { "DKIM selectors " input name="selectors" id="selectors" value=(f.selectors) placeholder="the s= of your DKIM-Signature; guessed when empty"; }
                label { "Sending addresses " input name="ips" id="ips" value=(f.ips) placeholder="192.0.2.25 2001:db8::25"; }
                label class="check" { input type="checkbox" name="smtp" id="smtp" checked[f.smtp]; " Test every MX over SMTP (port 25, STARTTLS, certificate)" }
                button id="check" { "Check" }
            }
        }
    }
}

pub fn check_page(v: &Viewer, f: &CheckFields) -> String {
    page("Check a domain", v, check_form(f), false)
}

/// The domain check's report (the JSON of `netjes check --json`): the
/// score and its verdict first, then a table per category.
pub fn check_report(v: &Viewer, fields: &CheckFields, r: &serde_json::Value) -> String {
    let domain = r["domain"].as_str().unwrap_or("");
    // No score (a domain that does not exist, nothing checked) is said in
    // words, never shown as 0.0 or as a green mark.
    let (score, verdict) = match (r["score"].as_f64(), r["verdict"].as_str()) {
        (Some(s), Some(w)) => (format!("{s:.1}/10"), w.to_string()),
        _ => ("no score".to_string(), String::new()),
    };
    let findings: Vec<&serde_json::Value> = r["findings"].as_array().into_iter().flatten().collect();
    let body = html! {
        (check_form(fields))
        section id="check-report" {
            h2 {
                span { (domain) }
                span class="score" { span id="verdict" { (verdict) } " " span id="score" { (score) } }
            }
            @if let Some(n) = r["input_note"].as_str() { p class="muted" { "Checked " (domain) ": " (n) } }
            @if let Some(h) = r["headline"].as_str() { p class="headline" id="headline" { (h) } }
            @if r["complete"] == false && r["score"].is_number() {
                p class="muted" { "Incomplete: some checks could not run, and count as failed until they can." }
            }
            @for why in r["capped_by"].as_array().into_iter().flatten() {
                p class="muted" { "Held down by: " (why.as_str().unwrap_or("")) }
            }
            @for s in r["scores"].as_array().into_iter().flatten() {
                (category_table(s, &findings))
            }
            @if let Some(tree) = r.get("spf_tree").filter(|t| !t["children"].as_array().is_none_or(|c| c.is_empty())) {
                section class="spf-tree" id="spf-tree" { h3 { "SPF include tree" } ul { (spf_node(tree, "")) } }
            }
        }
    };
    page(&format!("Check {domain}"), v, body, false)
}

/// One category: its score, and its findings as rows of check, result
/// and details.
fn category_table(s: &serde_json::Value, findings: &[&serde_json::Value]) -> Markup {
    let cat = s["category"].as_str().unwrap_or("");
    let score = s["score"]
        .as_f64()
        .map(|v| format!("{v:.1}/10"))
        .unwrap_or_else(|| "not checked".into());
    html! {
        table class="findings" data-category=(cat) {
            caption { span { (category_title(cat)) } " " span class="muted" { (score) } }
            tr { th { "Check" } th { "Result" } th { "Details" } }
            @for (i, f) in findings.iter().enumerate().filter(|(_, f)| f["category"] == cat) {
                @let status = f["status"].as_str().unwrap_or("info");
                @let id = f["id"].as_str().unwrap_or("");
                tr class=(status_class(status)) {
                    td { (netjes_check::report::title(id)) br; small class="muted" { code { (id) } } }
                    td { span class={"badge " (status_class(status))} { (result_word(status)) } }
                    td {
                        (f["message"].as_str().unwrap_or(""))
                        @if let Some(a) = f["advice"].as_str() { div class="muted" { (a) } }
                        @if let Some(fix) = f.get("fix").filter(|x| !x.is_null()) { (fix_block(i, fix)) }
                    }
                }
            }
        }
    }
}

fn result_word(status: &str) -> &'static str {
    match status {
        "pass" => "pass",
        "info" => "info",
        "warn" => "warning",
        "fail" => "fail",
        _ => "not checked",
    }
}

fn category_title(c: &str) -> &'static str {
    match c {
        "mx" => "MX",
        "ptr" => "Reverse DNS (PTR)",
        "spf" => "SPF",
        "dkim" => "DKIM",
        "dmarc" => "DMARC",
        "mta-sts" => "MTA-STS",
        "tls-rpt" => "TLS-RPT",
        "bimi" => "BIMI",
        "blocklists" => "Blocklists",
        "smtp" => "SMTP",
        _ => "Other",
    }
}

/// A record to publish: name, type and value for a DNS provider's form,
/// and the one absolute zone-file line (an MX value is never quoted).
fn fix_block(i: usize, fix: &serde_json::Value) -> Markup {
    html! {
        div class="record" {
            div { "Publish: name " code { (fix["name"].as_str().unwrap_or("")) } " type " code { (fix["type"].as_str().unwrap_or("")) } " value "
                code id={"fix-" (i) "-value"} { (fix["value"].as_str().unwrap_or("")) } " "
                button type="button" data-copy={"fix-" (i) "-value"} { "Copy" } }
            div { "Zone file " code id={"fix-" (i)} { (fix["zone_line"].as_str().unwrap_or("")) } " "
                button type="button" data-copy={"fix-" (i)} { "Copy" } }
        }
    }
}

fn spf_node(n: &serde_json::Value, term: &str) -> Markup {
    let lookups = n["lookups"].as_u64().unwrap_or(0);
    html! {
        li {
            @if !term.is_empty() { code { (term) } " → " }
            strong { (n["domain"].as_str().unwrap_or("")) }
            " " span class="muted" { (lookups) " lookup(s)" }
            @if let Some(r) = n["record"].as_str() { div { code { (r) } } }
            @if let Some(p) = n["problem"].as_str() { div class="warn-text" { (p) } }
            @if let Some(children) = n["children"].as_array().filter(|c| !c.is_empty()) {
                ul { @for c in children { (spf_node(&c["node"], c["term"].as_str().unwrap_or(""))) } }
            }
        }
    }
}

pub fn analyze_form(v: &Viewer) -> String {
    let body = html! {
        section {
            h1 { "Analyze a message" }
            p { "Paste a message with its headers (in Gmail: Show original; in Outlook: View source), or upload an .eml file." }
            form method="post" action="/analyze" enctype="multipart/form-data" {
                (csrf_field(v))
                textarea name="message" rows="14" placeholder="Received: ...\nFrom: ..." {}
                p { input type="file" name="file" accept=".eml,message/rfc822,text/plain"; }
                button id="analyze" { "Analyze" }
            }
        }
    };
    page("Analyze a message", v, body, false)
}

/// The analyzer's report fragment (it escapes what it shows).
pub fn analyze_report(v: &Viewer, fragment: &str) -> String {
    page("Analysis", v, html! { div id="report" { (PreEscaped(fragment)) } }, false)
}

pub fn login(v: &Viewer, next: &str, error: Option<&str>) -> String {
    let body = html! {
        section class="narrow" {
            h1 { "Log in" }
            @if let Some(e) = error { p class="error" { (e) } }
            form method="post" action="/login" {
                (csrf_field(v))
                input type="hidden" name="next" value=(next);
                label { "User " input name="user" id="user" autocomplete="username" required; }
                label { "Password " input type="password" name="password" id="password" autocomplete="current-password" required; }
                button id="login" { "Log in" }
            }
        }
    };
    page("Log in", v, body, false)
}

pub fn error(v: &Viewer, status: u16, message: &str) -> String {
    layout("Error", v, html! { section { h1 { (status) } p class="error" { (message) } } })
}

pub fn date(t: i64) -> String {
    mail_parser::DateTime::from_timestamp(t).to_rfc822()
}

/// The record twice: name and value for a DNS provider's web form, and
/// the line for a zone file.
fn record_block(k: &KeyRow) -> Markup {
    let id = k.id;
    html! {
        div class="record" {
            div class="muted" { "Name" }
            code id={"name-" (id)} { (k.dns_name()) } " " button type="button" data-copy={"name-" (id)} { "Copy" }
            div class="muted" { "Type TXT, value" }
            code id={"value-" (id)} class="value" { (k.dns_value()) } " " button type="button" data-copy={"value-" (id)} { "Copy" }
            div class="muted" { "Zone file (BIND)" }
            code id={"zone-" (id)} class="zone" { (k.zone_line()) } " " button type="button" data-copy={"zone-" (id)} { "Copy" }
        }
    }
}

/// The signing domains, each with a warning when it is active but its
/// key is not what DNS publishes.
pub fn domains(v: &Viewer, list: &[(DomainRow, Vec<String>)], error: Option<&str>) -> String {
    let body = html! {
        section {
            h1 { "Signing domains" }
            p { "The milter signs mail from active domains with their active keys, from the next message on." }
            @if let Some(e) = error { p class="error" { (e) } }
            table id="domains" {
                tr { th { "Domain" } th { "Selectors" } th { "State" } th { "Created" } th { "Rotated" } }
                @for (d, warnings) in list {
                    @let sel: Vec<String> = d.keys.iter().filter(|k| k.state == "active").map(|k| format!("{} ({})", k.selector, k.algorithm.k_tag())).collect();
                    @let rotated = d.keys.iter().filter_map(|k| k.rotated).max().map(date).unwrap_or_default();
                    tr {
                        td { a href={"/domains/" (d.domain)} { (d.domain) } @for w in warnings { div class="warn-text" { "⚠ " (w) } } }
                        td { (sel.join(", ")) }
                        td { @if d.active { span class="badge pass" { "active" } } @else { span class="badge info" { "inactive" } } }
                        td { (date(d.created)) }
                        td { (rotated) }
                    }
                }
            }
        }
        section {
            h2 { "Add a signing domain" }
            form method="post" action="/domains" class="grid" {
                (csrf_field(v))
                label { "Domain " input name="domain" id="new-domain" placeholder="customer.example" required; }
                label { "Selector " input name="selector" id="new-selector" value=(default_selector()) required; }
                label { "Key " select name="algorithm" id="new-algorithm" {
                    option value="rsa" { "RSA 2048" }
                    option value="ed25519" { "Ed25519" }
                    option value="both" { "both (two selectors)" }
                } }
                details {
                    summary { "Or import a private key (PEM, PKCS#8 or PKCS#1; encrypted PKCS#8 with its password)" }
                    textarea name="pem" rows="6" {}
                    label { "Password " input type="password" name="password" autocomplete="off"; }
                }
                button id="add-domain" { "Add and generate the key" }
            }
        }
    };
    page("Signing domains", v, body, false)
}

/// A selector named by the month, as many operators do: s202611.
pub fn default_selector() -> String {
    let d = mail_parser::DateTime::from_timestamp(crate::store::now());
    format!("s{}{:02}", d.year, d.month)
}

/// A selector for a new key that none of the domain's keys uses: the
/// month's, then with b, c, ... after it.
pub fn free_selector(d: &DomainRow) -> String {
    let base = default_selector();
    let taken = |s: &str| d.keys.iter().any(|k| k.selector == s || k.selector.starts_with(&format!("{s}-")));
    std::iter::once(base.clone())
        .chain(('b'..='z').map(|c| format!("{base}{c}")))
        .find(|s| !taken(s))
        .unwrap_or_else(|| format!("{base}-{}", crate::store::now()))
}

/// One signing domain: its keys with their records, the DNS check,
/// rotation; deleting asks for confirmation first.
/// The route section of a domain's page: the form, a warning for plain
/// text, and the steps of a connection test when one ran.
fn route_section(v: &Viewer, d: &DomainRow, route: &crate::routes::Route, steps: Option<&[netjes_check::relay::ProbeStep]>) -> Markup {
    let tls = route.tls.map(|t| serde_json::to_value(t).ok().and_then(|x| x.as_str().map(String::from)).unwrap_or_default()).unwrap_or_else(|| "starttls".into());
    html! {
        section id="route" {
            h2 { "Route" }
            p id="route-now" {
                @if route.kind == "relay" {
                    "Through " code { (route.host.as_deref().unwrap_or("")) ":" (route.port.unwrap_or(0)) } " (" (tls) ")"
                    @if let Some(u) = &route.user { ", logged in as " code { (u) } @if route.has_password { " (password kept)" } }
                } @else { "Direct: Postfix delivers to the recipient's MX." }
            }
            @if let Some(w) = &route.warning { p class="warn-text" id="route-warning" { "⚠ " (w) } }
            form method="post" action={"/domains/" (d.domain) "/route"} {
                (csrf_field(v))
                label { input type="radio" name="kind" value="direct" checked[route.kind == "direct"]; " Direct" }
                " "
                label { input type="radio" name="kind" value="relay" checked[route.kind == "relay"]; " Through the customer's server" }
                div {
                    label { "Host " input name="host" id="route-host" value=(route.host.as_deref().unwrap_or("")); }
                    " " label { "Port " input name="port" id="route-port" size="5" value=(route.port.map(|p| p.to_string()).unwrap_or_else(|| "587".into())); }
                    " " label { "TLS " select name="tls" id="route-tls" {
                        @for (value, label) in [("starttls", "STARTTLS required"), ("implicit", "Implicit TLS (465)"), ("opportunistic", "STARTTLS if offered"), ("none", "None (not recommended)")] {
                            option value=(value) selected[tls == value] { (label) }
                        }
                    } }
                }
                div {
                    label { "User " input name="user" id="route-user" autocomplete="off" value=(route.user.as_deref().unwrap_or("")); }
                    " " label { "Password " input type="password" name="password" id="route-password" autocomplete="new-password" placeholder=(if route.has_password { "unchanged" } else { "" }); }
                }
                button id="save-route" { "Save the route" }
            }
            @if route.kind == "relay" {
                form method="post" action={"/domains/" (d.domain) "/route/test"} class="inline" {
                    (csrf_field(v)) button id="test-route" { "Test the connection" }
                }
            }
            @if let Some(steps) = steps {
                ul id="route-test" {
                    @for s in steps {
                        li class=(if s.ok { "pass" } else { "fail" }) { (if s.ok { "✓ " } else { "✗ " }) strong { (s.step) } ": " (s.detail) }
                    }
                }
            }
        }
    }
}

pub fn domain_with_route(
    v: &Viewer,
    d: &DomainRow,
    checks: &[(i64, netjes_check::dkim::KeyTest)],
    message: Option<&str>,
    route: Option<&crate::routes::Route>,
    steps: Option<&[netjes_check::relay::ProbeStep]>,
) -> String {
    let body = html! {
        section {
            h1 { (d.domain) }
            p {
                @if d.active { span class="badge pass" id="domain-state" { "active" } }
                @else { span class="badge info" id="domain-state" { "inactive" } }
                " · created " (date(d.created))
            }
            @if let Some(m) = message { p class="notice" id="notice" { (m) } }
            div class="actions" {
                form method="post" action={"/domains/" (d.domain) "/active"} class="inline" {
                    (csrf_field(v))
                    input type="hidden" name="active" value=(if d.active { "false" } else { "true" });
                    button id="toggle-active" { (if d.active { "Deactivate" } else { "Activate" }) }
                }
                form method="post" action={"/domains/" (d.domain) "/check"} class="inline" {
                    (csrf_field(v)) button id="check-dns" { "Check DNS" }
                }
            }
        }
        @for k in &d.keys {
            @let cls = if k.state == "active" { "pass" } else if k.state == "pending" { "warn" } else { "info" };
            section class={"key " (k.state)} id={"key-" (k.id)} {
                h2 { span { (k.selector) " · " (k.algorithm.k_tag()) " " (k.bits) } span class={"badge " (cls)} { (k.state) } }
                (record_block(k))
                @if let Some((_, t)) = checks.iter().find(|(id, _)| *id == k.id) {
                    @let tcls = match t.status {
                        netjes_check::dkim::KeyStatus::Ok => "pass",
                        netjes_check::dkim::KeyStatus::DnsError => "warn",
                        _ => "fail",
                    };
                    p class={"dns-check " (tcls)} id={"dns-" (k.id)} { (t.message) }
                    @for w in &t.warnings { p class="warn-text" { "⚠ " (w) } }
                }
                @if k.state == "pending" {
                    p { "Publish this record, wait for it to be seen, then switch. Keep the old record published for a few days after, for mail still on its way." }
                    form method="post" action={"/keys/" (k.id) "/switch"} class="inline" { (csrf_field(v)) button { "Switch to this key" } }
                }
                @if k.state != "active" {
                    " "
                    form method="post" action={"/keys/" (k.id) "/delete"} class="inline" data-confirm={"Delete the key " (k.selector) " of " (d.domain) "? Mail signed with it can no longer be verified once its record is gone."} {
                        (csrf_field(v)) button class="danger" id={"delete-key-" (k.id)} { "Delete this key" }
                    }
                }
            }
        }
        @if let Some(r) = route { (route_section(v, d, r, steps)) }
        p { a href={"/domains/" (d.domain) "/suppressions"} id="suppressions-link" { "Suppressed recipients" } " · " a href={"/domains/" (d.domain) "/reputation"} id="reputation-link" { "Reputation" } }
        section id="logins" {
            h2 { "Applications" }
            p { "The SASL logins of the applications that send for " (d.domain) ". A login named on any domain may send only for the domains it is named on, and for each only once it is active; the policy service refuses the rest with a 5xx that names the domain (with sending_domains_dir in policy.toml). Logins named nowhere, the MTA's own users, are not restricted." }
            form method="post" action={"/domains/" (d.domain) "/logins"} {
                (csrf_field(v))
                label { "Logins " input name="logins" id="domain-logins" value=(d.logins.join(", ")); }
                " " button id="save-logins" { "Save" }
            }
        }
        section {
            h2 { "Rotate" }
            p { "Makes a new key under a new selector for each algorithm in use. Both records show here until you switch." }
            form method="post" action={"/domains/" (d.domain) "/rotate"} {
                (csrf_field(v))
                label { "New selector " input name="selector" id="rotate-selector" value=(free_selector(d)) required; }
                " " button id="rotate" { "Make the new key" }
            }
        }
        section {
            form method="post" action={"/domains/" (d.domain) "/delete"} data-confirm={"Delete " (d.domain) " and all its keys? The milter stops signing its mail at once."} {
                (csrf_field(v)) button class="danger" id="delete-domain" { "Delete this domain and its keys" }
            }
        }
    };
    page(&d.domain, v, body, false)
}

/// A domain's suppression list: search, remove, export.
pub fn suppressions(v: &Viewer, domain: &str, q: &str, rows: &[crate::suppress_store::Suppression], message: Option<&str>) -> String {
    let body = html! {
        section {
            h1 { "Suppressed recipients of " (domain) }
            p { "Addresses " (domain) " no longer sends to: each bounced hard (from Postfix's log, by " code { "netjes events --store" } "), or was added by hand. The policy service refuses mail to them at RCPT." }
            @if let Some(m) = message { p class="notice" id="notice" { (m) } }
            form method="get" action={"/domains/" (domain) "/suppressions"} {
                label { "Search " input name="q" id="suppression-search" value=(q); }
                " " button { "Search" }
                " " a href={"/domains/" (domain) "/suppressions.csv?q=" (q)} id="suppression-export" { "Export as CSV" }
            }
            @if rows.is_empty() { p id="suppression-none" { "None." } }
            @else {
                table id="suppressions" {
                    thead { tr { th { "Address" } th { "Why" } th { "Since" } th {} } }
                    tbody {
                        @for r in rows {
                            tr {
                                td { (r.address) }
                                td { (r.class) ": " (r.reason) }
                                td { (date(r.created)) }
                                td {
                                    form method="post" action={"/domains/" (domain) "/suppressions/remove"} class="inline" {
                                        (csrf_field(v)) input type="hidden" name="address" value=(r.address);
                                        button class="danger" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p { a href={"/domains/" (domain)} { "Back to " (domain) } }
        }
    };
    page(&format!("Suppressions · {domain}"), v, body, false)
}

/// A domain's reputation over the last days, from its own traffic.
pub fn reputation(v: &Viewer, domain: &str, r: &crate::reputation::Reputation) -> String {
    let pct = |x: Option<f64>| x.map(|x| format!("{:.2} %", x * 100.0)).unwrap_or_else(|| "not measured".into());
    let body = html! {
        section {
            h1 { "Reputation of " (domain) }
            p { "The last " (r.days) " days of " (domain) "'s mail as Postfix's log shows it (" code { "netjes events --store" } "): what receivers see of it, as Google Postmaster Tools shows Gmail's side." }
            @for w in &r.warnings { p class="warn-text" { "⚠ " (w) } }
            @if r.warnings.is_empty() { p class="pass" id="reputation-ok" { "No threshold near." } }
            table id="reputation" {
                tbody {
                    tr { th { "Delivered" } td { (r.delivered) } }
                    tr { th { "Deferred (tries)" } td { (r.deferred) } }
                    tr { th { "Bounced: hard" } td { (r.hard) } }
                    tr { th { "Bounced: block" } td { (r.block) } }
                    tr { th { "Bounced: soft" } td { (r.soft) } }
                    tr { th { "Bounce rate (hard and block)" } td id="bounce-rate" { (pct(r.bounce_rate)) " (warning at 2 %, alarm at 5 %)" } }
                    tr { th { "Complaints" } td { (r.complaints) } }
                    tr { th { "Complaint rate" } td id="complaint-rate" { (pct(r.complaint_rate)) @if r.complaint_rate.is_none() { " (no complaint has been read: see netjes bounce --store)" } " (Gmail and Yahoo ask for under 0.3 %, Google for under 0.1 %)" } }
                }
            }
            @if !r.blocks.is_empty() {
                h2 { "Blocked by" }
                table id="blocks" {
                    thead { tr { th { "Receiver" } th { "Messages" } th { "Its words" } } }
                    tbody { @for (receiver, n, reply) in &r.blocks { tr { td { (receiver) } td { (n) } td { (reply) } } } }
                }
            }
            p { a href={"/domains/" (domain)} { "Back to " (domain) } }
        }
    };
    page(&format!("Reputation · {domain}"), v, body, false)
}
