//! The HTML of the reports pages (maud, escaped by default): the domains
//! with reports, one domain's sources, readiness, trend and TLS reports,
//! the held and rejected inputs, and one report. The trend chart is SVG
//! drawn here, on the server: no script draws it.

use crate::pages::{page, Viewer};
use crate::report_intake::Outcome;
use crate::report_store::{RejectedRow, ReportRow};
use crate::report_view::{DomainView, TlsSummary};
use maud::{html, Markup};
use netjes_reports::sources::{Class, Day, Source};

fn csrf_field(v: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(v.csrf); }
}

pub use netjes_reports::write::day_text;

fn when(t: Option<i64>) -> String {
    t.map(|t| day_text(t.div_euclid(86_400))).unwrap_or_default()
}

fn class_word(c: Class) -> (&'static str, &'static str) {
    match c {
        Class::Passing => ("passing", "pass"),
        Class::AuthorisedFailing => ("authorised, failing", "warn"),
        Class::Forwarder => ("forwarder", "info"),
        Class::Unauthorised => ("unauthorised", "fail"),
    }
}

fn pct(n: u64, of: u64) -> String {
    if of == 0 {
        return "–".into();
    }
    format!("{:.0} %", 100.0 * n as f64 / of as f64)
}

/// The domains with reports, what is kept apart, and the upload form.
/// What the index shows besides the domains.
pub struct IndexExtras<'a> {
    pub held: usize,
    pub rejected: usize,
    pub addresses: &'a [String],
    /// Recent alerts: kind, domain, subject, when sent.
    pub alerts: &'a [(String, String, String, i64)],
}

pub fn index(v: &Viewer, domains: &[(String, i64, i64)], x: &IndexExtras<'_>, outcomes: Option<&[Outcome]>) -> String {
    let (held, rejected, addresses) = (x.held, x.rejected, x.addresses);
    let body = html! {
        section {
            h1 { "DMARC and TLS reports" }
            @if let Some(out) = outcomes {
                table class="findings" id="upload-results" {
                    caption { "The upload" }
                    tr { th { "Result" } th { "Kind" } th { "Reporter" } th { "Report" } th { "Why" } }
                    @for o in out {
                        tr class=(if o.result == "stored" || o.result == "duplicate" { "pass" } else { "fail" }) {
                            td { (o.result) } td { (o.kind.unwrap_or("")) } td { (o.reporter.clone().unwrap_or_default()) }
                            td { (o.report_id.clone().unwrap_or_default()) } td { (o.reason.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
            @if domains.is_empty() {
                p id="no-reports" { "No reports yet. Publish an rua= address in your DMARC record (and your TLS-RPT record), then wait a day or two: receivers send one report a day." }
            } @else {
                table class="findings" id="report-domains" {
                    tr { th { "Domain" } th { "Reports" } th { "Newest" } }
                    @for (d, n, newest) in domains {
                        tr { td { a href={"/reports/" (d)} { (d) } } td { (n) } td { (when(Some(*newest))) } }
                    }
                }
            }
            p {
                a href="/reports/held" id="held-link" { (held) " held" } " (not authenticated as their reporter, about another domain, or from the future) · "
                a href="/reports/rejected" id="rejected-link" { (rejected) " rejected" } " (not reports, or over a limit)"
            }
            @if !addresses.is_empty() {
                p class="muted" { "Reports mailed to " @for (i, a) in addresses.iter().enumerate() { @if i > 0 { ", " } code { (a) } } " arrive here." }
            }
        }
        @if !x.alerts.is_empty() {
            section {
                h2 { "Alerts of the last 30 days" }
                table class="findings" id="alerts" {
                    tr { th { "Sent" } th { "Domain" } th { "Alert" } }
                    @for (_, domain, subject, sent) in x.alerts {
                        tr class="warn" { td { (crate::pages::date(*sent)) } td { (domain) } td { (subject) } }
                    }
                }
            }
        }
        section {
            h2 { "Upload reports" }
            p class="muted" { "Files as receivers send them (.xml, .xml.gz, .zip, .json, .json.gz) or whole report mails (.eml). You vouch for what you upload: it is not held for its authentication." }
            form method="post" action="/reports/upload" enctype="multipart/form-data" {
                (csrf_field(v))
                input type="file" name="file" id="report-file" multiple required;
                " "
                button id="upload-report" { "Upload" }
            }
        }
    };
    page("Reports", v, body, false)
}

/// The trend over the days `from..=to`: bars of daily volume, stacked by
/// disposition, and the aligned pass rate as a line (and a dot a day) over
/// them.
pub fn trend(days: &[Day], from: i64, to: i64) -> Markup {
    const W: f64 = 720.0;
    const H: f64 = 180.0;
    if days.is_empty() {
        return html! {};
    }
    let first = from.min(days[0].day);
    let last = to.max(days[days.len() - 1].day);
    let span = (last - first + 1).max(1) as f64;
    let max = days.iter().map(|d| d.messages).max().unwrap_or(1).max(1) as f64;
    let bar = (W / span).max(1.0);
    let x = |day: i64| (day - first) as f64 * W / span;
    let colour = |disp: &str| match disp {
        "reject" => "#c62828",
        "quarantine" => "#b76e00",
        _ => "#8fb3e8",
    };
    let line: Vec<String> = days
        .iter()
        .map(|d| format!("{:.1},{:.1}", x(d.day) + bar / 2.0, H - H * d.passing as f64 / d.messages.max(1) as f64))
        .collect();
    html! {
        figure {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (W) " " (H + 20.0)} width="100%" role="img" id="trend" aria-label="Messages per day and the share passing DMARC" {
                rect x="0" y="0" width=(W) height=(H) fill="#f6f7f9" {}
                @for d in days {
                    @let mut y = H;
                    @for (disp, n) in &d.dispositions {
                        @let h = H * *n as f64 / max;
                        @let top = { y -= h; y };
                        rect x=(format!("{:.1}", x(d.day))) y=(format!("{top:.1}")) width=(format!("{:.1}", (bar - 1.0).max(0.5))) height=(format!("{h:.1}")) fill=(colour(disp)) {
                            title { (day_text(d.day)) ": " (n) " " (disp) }
                        }
                    }
                }
                polyline points=(line.join(" ")) fill="none" stroke="#1a7f37" stroke-width="2" {}
                @for (d, p) in days.iter().zip(&line) {
                    @let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
                    circle cx=(cx) cy=(cy) r="3" fill="#1a7f37" {
                        title { (day_text(d.day)) ": " (pct(d.passing, d.messages)) " pass" }
                    }
                }
                text x="0" y=(H + 15.0) font-size="11" { (day_text(first)) }
                text x=(W) y=(H + 15.0) font-size="11" text-anchor="end" { (day_text(last)) }
            }
            figcaption class="muted" { "Bars: messages per day (blue none, orange quarantine, red reject; the tallest is " (max as u64) "). Green line: the share passing DMARC." }
        }
    }
}

fn source_row(s: &Source) -> Markup {
    let (word, tone) = class_word(s.class);
    let who = [s.ptr.clone(), s.organization.clone()].into_iter().flatten().collect::<Vec<_>>().join(" · ");
    let disp = s.dispositions.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ");
    html! {
        tr class=(tone) data-ip=(s.ip) {
            td { code { (s.ip) } @if !who.is_empty() { div class="muted" { (who) } } @if let Some(a) = &s.advice { div class="warn-text" { (a) } } }
            td { (s.messages) }
            td { (pct(s.spf_aligned_pass, s.messages)) }
            td { (pct(s.dkim_aligned_pass, s.messages)) }
            td { (pct(s.dmarc_pass, s.messages)) }
            td { (disp) }
            td { (day_text(s.first_seen)) " – " (day_text(s.last_seen)) }
            td { span class={"badge " (tone)} { (word) } }
        }
    }
}

/// One domain: readiness, sources, trend, TLS reports and the reports.
pub fn domain(v: &Viewer, view: &DomainView, tls: &TlsSummary, reports: &[ReportRow], since: i64, failures_only: bool) -> String {
    let today = crate::store::now().div_euclid(86_400);
    let o = &view.overview;
    let shown: Vec<&Source> = o.sources.iter().filter(|s| !failures_only || s.class != Class::Passing).collect();
    let ready = o.readiness.would_fail.is_empty() && o.readiness.messages > 0;
    let body = html! {
        section {
            h1 { "Who sends as " (o.domain) }
            p id="readiness" class={"notice " (if ready { "pass" } else { "warn" })} { (o.readiness.sentence) }
            form method="get" class="grid" {
                label { "Since " input type="date" name="since" value=(day_text(since)); }
                label class="check" { input type="checkbox" name="failures" value="1" checked[failures_only]; " Failures only" }
                button { "Show" }
                " "
                a href={"/api/reports/" (o.domain) "?since=" (day_text(since))} { "JSON" }
            }
            (trend(&view.days, since, today))
            table class="findings" id="sources" {
                caption { (shown.len()) " source(s), " (o.readiness.messages) " messages, " (pct(o.readiness.passing, o.readiness.messages)) " passing DMARC" }
                tr { th { "Source" } th { "Messages" } th { "SPF aligned" } th { "DKIM aligned" } th { "DMARC pass" } th { "Dispositions" } th { "Seen" } th { "Class" } }
                @for s in &shown { (source_row(s)) }
            }
        }
        @if tls.reports > 0 {
            section id="tls" {
                h2 { "TLS reports (SMTP TLS Reporting, RFC 8460)" }
                p { (tls.successful_sessions) " sessions over TLS, " (tls.failed_sessions) " failed, in " (tls.reports) " reports from " (tls.organizations.join(", ")) "." }
                @if !tls.failures.is_empty() {
                    p id="tls-kinds" { "Failed sessions by kind: " (tls.failures.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")) "." }
                }
                @if !tls.result_types.is_empty() {
                    table class="findings" {
                        tr { th { "Failure" } th { "Sessions" } }
                        @for (t, n) in &tls.result_types { tr class="fail" { td { code { (t) } } td { (n) } } }
                    }
                }
            }
        }
        section {
            h2 { "Reports" }
            (report_table(reports))
        }
    };
    page(&format!("Reports for {}", o.domain), v, body, false)
}

fn report_table(reports: &[ReportRow]) -> Markup {
    html! {
        table class="findings" id="report-list" {
            tr { th { "Kind" } th { "Reporter" } th { "Report" } th { "Period" } th { "Received" } th { "Held" } }
            @for r in reports {
                tr class=(if r.held.is_some() { "warn" } else { "info" }) {
                    td { (r.kind) } td { (r.reporter) }
                    td { a href={"/reports/view/" (r.id)} { (r.report_id) } }
                    td { (when(r.begin)) " – " (when(r.end)) }
                    td { (crate::pages::date(r.received)) }
                    td { (r.held.clone().unwrap_or_default()) }
                }
            }
        }
    }
}

/// Reports kept apart, each with its reason and a button to take it in.
pub fn held(v: &Viewer, rows: &[ReportRow]) -> String {
    let body = html! {
        section {
            h1 { "Held reports" }
            p { "Stored, but left out of every view until you take them in: their mail was not authenticated as their reporter's, they are about a domain this host does not serve, or they end in the future." }
            table class="findings" id="held" {
                tr { th { "Reporter" } th { "Report" } th { "Domain" } th { "Why" } th {} }
                @for r in rows {
                    tr class="warn" {
                        td { (r.reporter) } td { a href={"/reports/view/" (r.id)} { (r.report_id) } } td { (r.policy_domain) }
                        td { (r.held.clone().unwrap_or_default()) }
                        td { form method="post" action={"/reports/" (r.id) "/release"} data-confirm="Take this report into the views?" { (csrf_field(v)) button { "Take in" } } }
                    }
                }
            }
        }
    };
    page("Held reports", v, body, false)
}

pub fn rejected(v: &Viewer, rows: &[RejectedRow]) -> String {
    let body = html! {
        section {
            h1 { "Rejected inputs" }
            p { "What arrived but could not be read as a report, with the reason. The raw copy is kept while there is room (the oldest go first)." }
            table class="findings" id="rejected" {
                tr { th { "Received" } th { "From" } th { "Why" } th { "Raw copy" } }
                @for r in rows {
                    tr class="fail" { td { (crate::pages::date(r.received)) } td { (r.source) } td { (r.reason) } td { @if r.raw_kept { "kept" } @else { "dropped" } } }
                }
            }
        }
    };
    page("Rejected inputs", v, body, false)
}

/// One report. A failure report shows the headers of the failed message;
/// its body is never shown (it is someone's mail).
pub fn report(v: &Viewer, r: &ReportRow, parsed: &serde_json::Value) -> String {
    let mut shown = parsed.clone();
    if let Some(o) = shown.as_object_mut() {
        o.remove("headers");
    }
    let body = html! {
        section {
            h1 { (r.kind) " report " (r.report_id) }
            p { "From " (r.reporter) " about " (r.policy_domain) ", received " (crate::pages::date(r.received)) " by " (r.source) "." }
            @if let Some(h) = &r.held { p class="warn-text" { "Held: " (h) } }
            @if let Some(h) = parsed["headers"].as_str() {
                h2 { "Headers of the failed message" }
                pre class="raw" id="failure-headers" { (h) }
            }
            h2 { "As read" }
            pre class="raw" { (serde_json::to_string_pretty(&shown).unwrap_or_default()) }
        }
    };
    page("Report", v, body, false)
}
