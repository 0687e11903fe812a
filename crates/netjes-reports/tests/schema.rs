//! What netjes writes validates against RFC 9990's own schema
//! (schema/rfc9990.xsd, Appendix A of the RFC), checked by xmllint from
//! Debian's libxml2-utils, which scripts/test.sh installs.

use netjes_reports::aggregate::{AggregateReport, DkimAuth, PolicyPublished, Reason, Record, SpfAuth};
use std::path::Path;
use std::process::Command;

fn validate(xml: &str) -> Result<(), String> {
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/rfc9990.xsd");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.xml");
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("xmllint (Debian's libxml2-utils; scripts/test.sh installs it)");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Every optional part filled in, and the forms the schema restricts:
/// two SPF results, a HELO scope, several errors, IPv6.
fn full_report() -> AggregateReport {
    let rec = |ip: &str, pass: bool| Record {
        source_ip: ip.parse().unwrap(),
        count: 3,
        disposition: if pass { "pass" } else { "quarantine" }.into(),
        dkim: if pass { "pass" } else { "fail" }.into(),
        spf: "fail".into(),
        reasons: if pass { vec![] } else { vec![Reason { kind: "trusted_forwarder".into(), comment: Some("list <x> & y".into()) }, Reason { kind: "policy_test_mode".into(), comment: None }] },
        header_from: "example.com".into(),
        envelope_from: Some("bounce.example.com".into()),
        envelope_to: Some("example.org".into()),
        dkim_results: vec![DkimAuth { domain: "example.com".into(), selector: Some("s1".into()), result: "pass".into() }, DkimAuth { domain: "esp.example".into(), selector: None, result: "temperror".into() }],
        spf_results: vec![SpfAuth { domain: "mx.example.com".into(), scope: Some("helo".into()), result: "softfail".into() }, SpfAuth { domain: "bounce.example.com".into(), scope: Some("mfrom".into()), result: "fail".into() }],
    };
    AggregateReport {
        format: "rfc9990",
        version: Some("1.0".into()),
        org_name: "mx.example.org".into(),
        email: Some("noreply-dmarc@mx.example.org".into()),
        report_id: "example.com!20787@mx.example.org".into(),
        begin: 1_796_000_000,
        end: 1_796_086_399,
        errors: vec!["one".into(), "two".into()],
        policy: PolicyPublished {
            domain: "example.com".into(),
            p: Some("reject".into()),
            sp: Some("quarantine".into()),
            np: Some("reject".into()),
            adkim: Some("s".into()),
            aspf: Some("r".into()),
            testing: Some("y".into()),
            fo: Some("1:d".into()),
            discovery_method: Some("treewalk".into()),
            ..Default::default()
        },
        records: vec![rec("192.0.2.1", true), rec("2001:db8::25", false)],
    }
}

#[test]
fn netjes_reports_validate_against_rfc_9990s_schema() {
    let xml = netjes_reports::write::to_xml(&full_report(), "netjes 0.1.0");
    validate(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
    // The smallest report: no optional part at all.
    let mut bare = full_report();
    bare.errors.clear();
    bare.email = None;
    bare.policy = PolicyPublished { domain: "example.com".into(), ..Default::default() };
    for r in &mut bare.records {
        (r.envelope_from, r.envelope_to, r.reasons, r.dkim_results, r.spf_results) = (None, None, vec![], vec![], vec![]);
    }
    let xml = netjes_reports::write::to_xml(&bare, "netjes 0.1.0");
    validate(&xml).unwrap_or_else(|e| panic!("{e}\n{xml}"));
}

#[test]
fn the_schema_check_catches_what_it_should() {
    // The validator itself must be able to fail: a scope RFC 9990 does not
    // name, and a second SPF result, as an older writer wrote them.
    let xml = netjes_reports::write::to_xml(&full_report(), "netjes 0.1.0");
    let bad = xml.replacen("<scope>mfrom</scope>", "<scope>helo</scope>", 1);
    assert!(validate(&bad).is_err());
    let spf = "      <spf>\n        <domain>x.example</domain>\n        <result>pass</result>\n      </spf>\n";
    let bad = xml.replacen("    </auth_results>", &format!("{spf}{spf}    </auth_results>"), 1);
    assert!(validate(&bad).is_err());
}
