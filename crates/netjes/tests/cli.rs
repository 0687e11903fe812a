//! The netjes command line, run as a user runs it, against the real test DNS
//! server on 127.0.0.1.

use netjes_testdns::TestDns;
use std::path::Path;
use std::process::Output;

fn netjes(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_netjes"));
    cmd.args(args)
        .env_remove("NETJES_NAMESERVER")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        input.write_all(data).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

async fn run(args: Vec<String>, stdin: Option<Vec<u8>>) -> Output {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        netjes(&a, stdin.as_deref())
    })
    .await
    .unwrap()
}

fn args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

use netjes_testdns::free_port;

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

const MESSAGE: &str = "From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: Invoice 42\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <42@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nHello Bob,\r\nhere is the invoice.\r\n";

const ZONE: &str = r#"
example.com.                 TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all"
_spf.example.net.            TXT "v=spf1 ip4:198.51.100.7 ~all"
_dmarc.example.com.          TXT "v=DMARC1; p=reject; rua=mailto:dmarc@example.com; pct=100"
soft.example.com.            TXT "v=spf1 ?all"
slow.example.com.            TIMEOUT
broken.example.com.          SERVFAIL
"#;

#[tokio::test]
async fn spf_check_reports_mechanism_and_lookup_counts() {
    let dns = TestDns::start_str(ZONE).await;
    let ns = dns.addr().to_string();
    // Passes through the include: the include is the mechanism that matched.
    let o = run(
        args(&[
            "spf",
            "check",
            "--ip",
            "198.51.100.7",
            "--sender",
            "alice@example.com",
            "--helo",
            "mail.example.com",
            "--json",
            "--nameserver",
            &ns,
        ]),
        None,
    )
    .await;
    assert_eq!(code(&o), 0);
    let j = json(&o);
    assert_eq!(j["result"], "pass");
    assert_eq!(j["mechanism"], "include:_spf.example.net");
    assert_eq!(j["mechanism_domain"], "example.com");
    assert_eq!(j["domain"], "example.com");
    assert_eq!(j["dns_lookups"], 1);
    assert_eq!(j["void_lookups"], 0);

    // Not listed anywhere: the include's ~all does not match, -all does.
    let o = run(
        args(&[
            "spf",
            "check",
            "--ip",
            "203.0.113.1",
            "--sender",
            "alice@example.com",
            "--helo",
            "mail.example.com",
            "--json",
            "--nameserver",
            &ns,
        ]),
        None,
    )
    .await;
    assert_eq!(code(&o), 1, "fail is not a pass");
    let j = json(&o);
    assert_eq!(j["result"], "fail");
    assert_eq!(j["mechanism"], "-all");

    // --nameserver before the subcommand, and the pass case.
    let o = run(
        args(&[
            "--nameserver",
            &ns,
            "--json",
            "spf",
            "check",
            "--ip",
            "192.0.2.9",
            "--sender",
            "alice@example.com",
            "--helo",
            "x.example.com",
        ]),
        None,
    )
    .await;
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["mechanism"], "ip4:192.0.2.0/24");

    // The null sender is postmaster@HELO.
    let o = run(
        args(&[
            "spf",
            "check",
            "--ip",
            "192.0.2.9",
            "--sender",
            "",
            "--helo",
            "soft.example.com",
            "--json",
            "--nameserver",
            &ns,
        ]),
        None,
    )
    .await;
    let j = json(&o);
    assert_eq!(j["identity"], "helo");
    assert_eq!(j["sender"], "postmaster@soft.example.com");
    assert_eq!(j["result"], "neutral");
}

#[tokio::test]
async fn dns_failures_are_temperror_never_none() {
    let dns = TestDns::start_str(ZONE).await;
    let ns = dns.addr().to_string();
    for domain in ["slow.example.com", "broken.example.com"] {
        let sender = format!("a@{domain}");
        let o = run(
            args(&[
                "spf",
                "check",
                "--ip",
                "192.0.2.9",
                "--sender",
                &sender,
                "--helo",
                "h.example",
                "--json",
                "--nameserver",
                &ns,
                "--dns-timeout",
                "1",
            ]),
            None,
        )
        .await;
        assert_eq!(json(&o)["result"], "temperror", "{domain}");
        assert_eq!(code(&o), 3, "{domain}");
    }
}

#[tokio::test]
async fn nameserver_from_the_environment() {
    let dns = TestDns::start_str(ZONE).await;
    let o = tokio::task::spawn_blocking({
        let ns = dns.addr().to_string();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_netjes"))
                .args([
                    "spf",
                    "check",
                    "--ip",
                    "192.0.2.9",
                    "--sender",
                    "a@example.com",
                    "--helo",
                    "h.example",
                    "--json",
                ])
                .env("NETJES_NAMESERVER", ns)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(json(&o)["result"], "pass");
}

fn keygen(dir: &Path, selector: &str, alg: &str) -> String {
    let o = netjes(
        &[
            "dkim",
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            selector,
            "--algorithm",
            alg,
            "--out-dir",
            dir.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    json(&o)["value"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn keygen_writes_a_private_key_and_a_zone_line() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let value = keygen(dir.path(), "s2026", "rsa");
    let private = dir.path().join("s2026.private");
    assert_eq!(
        std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let pem = std::fs::read_to_string(&private).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
    let txt = std::fs::read_to_string(dir.path().join("s2026.txt")).unwrap();
    assert!(
        txt.starts_with("s2026._domainkey\tIN\tTXT\t( \"v=DKIM1; k=rsa; \""),
        "{txt}"
    );
    let strings: Vec<&str> = txt.split('"').skip(1).step_by(2).collect();
    assert!(strings.iter().all(|s| s.len() <= 255), "{strings:?}");
    assert_eq!(strings.concat(), value, "the zone line holds the record");
    assert!(value.len() > 300, "a 2048-bit key by default");
    // Existing keys are not overwritten.
    let o = netjes(
        &[
            "dkim",
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            "s2026",
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert_ne!(code(&o), 0);
    assert_eq!(std::fs::read_to_string(&private).unwrap(), pem);
    // Below 1024 bits is refused.
    let o = netjes(
        &[
            "dkim",
            "keygen",
            "--domain",
            "example.com",
            "--selector",
            "weak",
            "--bits",
            "512",
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("1024"));
    // A selector or domain that is not a DNS name is refused before any
    // file is written (a "/" would also escape the output folder).
    for (domain, selector, said) in [
        ("example.com", "../evil", "--selector"),
        ("example.com", "s 1", "--selector"),
        ("example.com", "-s1", "--selector"),
        ("exa mple.com", "s1", "--domain"),
        ("localhost", "s1", "--domain"),
    ] {
        let o = netjes(
            &["dkim", "keygen", "--domain", domain, "--selector", selector, "--out-dir", dir.path().to_str().unwrap()],
            None,
        );
        assert_eq!(code(&o), 2, "{domain} {selector}");
        assert!(String::from_utf8_lossy(&o.stderr).contains(said), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert!(!dir.path().join("../evil.private").exists());
}

#[tokio::test]
async fn record_reads_an_encrypted_key() {
    use pkcs8::der::pem::LineEnding;
    let dir = tempfile::tempdir().unwrap();
    let value = keygen(dir.path(), "enc", "rsa");
    let pem = std::fs::read_to_string(dir.path().join("enc.private")).unwrap();
    let (_, doc) = pkcs8::SecretDocument::from_pem(&pem).unwrap();
    let info = pkcs8::PrivateKeyInfo::try_from(doc.as_bytes()).unwrap();
    // PBES2 with PBKDF2-SHA256 and AES-256-CBC, as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes.
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
        10_000,
        b"saltsalt",
        b"0123456789abcdef",
    )
    .unwrap();
    let enc = info.encrypt_with_params(params, b"s3cret").unwrap();
    let enc_pem = enc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF).unwrap();
    let key = dir.path().join("enc.pem");
    std::fs::write(&key, enc_pem.as_bytes()).unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let o = netjes(
        &[
            "dkim",
            "record",
            "--domain",
            "example.com",
            "--selector",
            "enc",
            "--key",
            key.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(json(&o)["value"], value);
    // Without the password: a clear error.
    let o = netjes(
        &[
            "dkim",
            "record",
            "--domain",
            "example.com",
            "--selector",
            "enc",
            "--key",
            key.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code(&o), 4);
    assert!(String::from_utf8_lossy(&o.stderr).contains("password"));
    std::fs::write(&pw, "wrong").unwrap();
    let o = netjes(
        &[
            "dkim",
            "record",
            "--domain",
            "example.com",
            "--selector",
            "enc",
            "--key",
            key.to_str().unwrap(),
            "--password-file",
            pw.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code(&o), 4);
}

#[tokio::test]
async fn testkey_tells_every_case_apart() {
    let dir = tempfile::tempdir().unwrap();
    let value = keygen(dir.path(), "good", "rsa");
    let other = keygen(dir.path(), "other", "rsa");
    // Published as a zone file would, in strings of at most 255 octets.
    let split = |v: &str| {
        v.as_bytes()
            .chunks(200)
            .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let (p1, p2) = value.split_at(200);
    let zone = format!(
        "good._domainkey.example.com. TXT {good}\nother._domainkey.example.com. TXT {good}\nquoted._domainkey.example.com. TXT \"{p1}\\\" \" \"\\\"{p2}\"\nerr._domainkey.example.com. SERVFAIL\ntest._domainkey.example.com. TXT {testing}\n",
        good = split(&value),
        testing = split(&format!("{value}; t=y")),
    );
    let dns = TestDns::start_str(&zone).await;
    let ns = dns.addr().to_string();
    let good = dir
        .path()
        .join("good.private")
        .to_string_lossy()
        .to_string();
    let otherkey = dir
        .path()
        .join("other.private")
        .to_string_lossy()
        .to_string();
    let _ = other;
    let t = |sel: &str, key: &str| {
        args(&[
            "dkim",
            "testkey",
            "--domain",
            "example.com",
            "--selector",
            sel,
            "--key",
            key,
            "--nameserver",
            &ns,
        ])
    };
    let o = run(t("good", &good), None).await;
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("key OK"));
    assert_eq!(code(&run(t("missing", &good), None).await), 5);
    assert_eq!(code(&run(t("other", &otherkey), None).await), 6);
    let o = run(t("quoted", &good), None).await;
    assert_eq!(code(&o), 7, "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("quote"));
    assert_eq!(code(&run(t("err", &good), None).await), 3);
    let o = run(t("test", &good), None).await;
    assert_eq!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("t=y"));
}

#[tokio::test]
async fn sign_then_verify_through_dns() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = keygen(dir.path(), "r1", "rsa");
    let ed = keygen(dir.path(), "e1", "ed25519");
    let zone = format!("{ZONE}\nr1._domainkey.example.com. TXT \"{}\" \"{}\"\ne1._domainkey.example.com. TXT \"{ed}\"\n", &rsa[..200], &rsa[200..]);
    let dns = TestDns::start_str(&zone).await;
    let ns = dns.addr().to_string();
    let key = |s: &str| {
        dir.path()
            .join(format!("{s}.private"))
            .to_string_lossy()
            .to_string()
    };

    // Two signatures, RSA then Ed25519, as a signer with both keys would add.
    let o = run(
        args(&[
            "dkim",
            "sign",
            "--domain",
            "example.com",
            "--selector",
            "r1",
            "--key",
            &key("r1"),
        ]),
        Some(MESSAGE.as_bytes().to_vec()),
    )
    .await;
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let once = o.stdout;
    assert!(once.starts_with(b"DKIM-Signature: v=1; a=rsa-sha256;"));
    let h = String::from_utf8_lossy(&once);
    assert!(h.contains("c=relaxed/relaxed"));
    let hlist = h
        .split("h=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .replace(['\r', '\n', '\t', ' '], "");
    assert_eq!(
        hlist
            .split(':')
            .filter(|x| x.eq_ignore_ascii_case("from"))
            .count(),
        2,
        "From is over-signed: {hlist}"
    );
    let o = run(
        args(&[
            "dkim",
            "sign",
            "--domain",
            "example.com",
            "--selector",
            "e1",
            "--key",
            &key("e1"),
            "-",
        ]),
        Some(once),
    )
    .await;
    let twice = o.stdout;
    let path = dir.path().join("signed.eml");
    std::fs::write(&path, &twice).unwrap();

    let o = run(
        args(&[
            "dkim",
            "verify",
            path.to_str().unwrap(),
            "--json",
            "--nameserver",
            &ns,
        ]),
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    let j = json(&o);
    let sigs = j.as_array().unwrap();
    assert_eq!(sigs.len(), 2);
    assert_eq!(sigs[0]["result"], "pass");
    assert_eq!(sigs[0]["algorithm"], "ed25519-sha256");
    assert_eq!(sigs[1]["result"], "pass");
    assert_eq!(sigs[1]["key_bits"], 2048);

    // The whole verdict, with SPF and DMARC.
    let o = run(
        args(&[
            "verify",
            "--ip",
            "192.0.2.20",
            "--helo",
            "mail.example.com",
            "--mail-from",
            "alice@example.com",
            "--authserv-id",
            "mx.example.org",
            "--json",
            "--nameserver",
            &ns,
            path.to_str().unwrap(),
        ]),
        None,
    )
    .await;
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    let j = json(&o);
    assert_eq!(j["spf"]["result"], "pass");
    assert_eq!(j["dmarc"]["result"], "pass");
    assert_eq!(j["dmarc"]["policy"], "reject");
    assert_eq!(j["dmarc"]["disposition"], "none");
    assert_eq!(j["dmarc"]["from_domain"], "example.com");
    assert_eq!(j["dmarc"]["record"]["obsolete"][0], "pct=100");
    assert_eq!(j["arc"]["result"], "none");
    let ar = j["authentication_results"].as_str().unwrap();
    assert_independent_parser_accepts(ar, 2, 2);

    // A changed body breaks both signatures, and DMARC then rests on SPF alone.
    let tampered = String::from_utf8(twice)
        .unwrap()
        .replace("here is the invoice", "here is the lnvoice");
    std::fs::write(&path, tampered).unwrap();
    let o = run(
        args(&[
            "dkim",
            "verify",
            path.to_str().unwrap(),
            "--json",
            "--nameserver",
            &ns,
        ]),
        None,
    )
    .await;
    assert_eq!(code(&o), 1);
    let j = json(&o);
    assert!(j[0]["reason"]
        .as_str()
        .unwrap()
        .contains("body hash mismatch"));
    let o = run(
        args(&[
            "verify",
            "--ip",
            "203.0.113.5",
            "--helo",
            "evil.example",
            "--mail-from",
            "alice@example.com",
            "--json",
            "--nameserver",
            &ns,
            path.to_str().unwrap(),
        ]),
        None,
    )
    .await;
    assert_eq!(code(&o), 1);
    let j = json(&o);
    assert_eq!(j["dmarc"]["result"], "fail");
    assert_eq!(j["dmarc"]["disposition"], "reject");
    assert_independent_parser_accepts(j["authentication_results"].as_str().unwrap(), 2, 2);
}

/// Parses the value with msg-auth-status, an RFC 8601 parser we did not write.
fn assert_independent_parser_accepts(value: &str, spf_results: usize, dkim_results: usize) {
    use msg_auth_status::alloc_yes::MessageAuthStatus;
    use msg_auth_status::mail_parser::MessageParser;
    let raw = format!("Authentication-Results: {value}\r\nFrom: a@example.com\r\n\r\nbody\r\n");
    let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
    let status = MessageAuthStatus::from_mail_parser(&msg).unwrap();
    let ar = &status.auth_results[0];
    assert!(ar.errors.is_empty(), "{value}\n{:?}", ar.errors);
    assert_eq!(ar.spf_result.len(), spf_results, "{value}\n{ar:?}");
    assert_eq!(ar.dkim_result.len(), dkim_results, "{value}\n{ar:?}");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error() {
    let dns = TestDns::start_str(ZONE).await;
    let ns = dns.addr().to_string();
    for input in [
        &b""[..],
        b"\x00\x01\x02 not mail",
        b"just one line without a colon\r\n",
    ] {
        let o = run(args(&["verify", "--nameserver", &ns]), Some(input.to_vec())).await;
        assert_eq!(code(&o), 4, "{input:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).starts_with("netjes: error:"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = run(args(&["dkim", "verify", "/nonexistent/file.eml"]), None).await;
    assert_eq!(code(&o), 4);
    let o = run(
        args(&["spf", "check", "--ip", "not-an-ip", "--helo", "x"]),
        None,
    )
    .await;
    assert_eq!(code(&o), 2);
}

/// The command line decides the spoofs of a p=reject domain as the milter
/// in Postfix does (crates/netjes-milter/tests/milter.rs has the same
/// cases over the wire): refused, or judged by the victim's policy, never
/// dmarc=none. A header block that Postfix would cut at a stray line is
/// cut here too.
#[tokio::test]
async fn verify_refuses_author_spoofs_as_the_milter_does() {
    let dns = TestDns::start_str(ZONE).await;
    let ns = dns.addr().to_string();
    let body = MESSAGE.split_once("\r\n").unwrap().1;
    let reject = |v: &serde_json::Value| v["dmarc"]["disposition"] == "reject";
    let cases: Vec<(&str, String, &str)> = vec![
        ("space after @", format!("From: <alice@ example.com>\r\n{body}"), "fail"),
        ("several authors", format!("From: x@other.example, alice@example.com\r\n{body}"), "fail"),
        ("Sender", format!("From: x@other.example\r\nSender: alice@example.com\r\n{body}"), "fail"),
        ("two From fields", format!("From: x@other.example\r\nFrom: alice@example.com\r\n{body}"), "permerror"),
        ("no From", body.to_string(), "permerror"),
        ("encoded address", format!("From: =?utf-8?q?alice=40example.com?=\r\n{body}"), "permerror"),
        ("bidi control", format!("From: alice@example\u{202E}.com\r\n{body}"), "permerror"),
        ("stray line", format!("Subject: x\r\nnot a field\r\nFrom: alice@example.com\r\n{body}"), "permerror"),
        ("first line folded", format!(" From: alice@example.com\r\n{body}"), "permerror"),
    ];
    for (name, msg, result) in cases {
        let o = run(
            args(&["verify", "--json", "--nameserver", &ns, "--ip", "203.0.113.9", "--helo", "x.test", "--mail-from", "b@other.example"]),
            Some(msg.into_bytes()),
        )
        .await;
        assert_eq!(code(&o), 1, "{name}: {}", String::from_utf8_lossy(&o.stdout));
        let v = json(&o);
        assert_eq!(v["dmarc"]["result"], result, "{name}: {v}");
        assert!(reject(&v), "{name}: {v}");
    }
    // Over the limits: refused with a clear error, never passed unchecked.
    let pad: String = (0..1001).map(|i| format!("X-Pad-{i}: x\r\n")).collect();
    let o = run(args(&["verify", "--nameserver", &ns]), Some(format!("{pad}{MESSAGE}").into_bytes())).await;
    assert_eq!(code(&o), 4);
    assert!(String::from_utf8_lossy(&o.stderr).contains("1000 header fields"));
    // The text report names the refusal.
    let o = run(args(&["verify", "--nameserver", &ns]), Some(body.as_bytes().to_vec())).await;
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("refused as malformed: the message has no From field"), "{out}");
}

/// Every command has an EXAMPLES section, and every option a line of help
/// (man-page quality --help).
#[test]
fn every_command_has_examples_and_every_option_help() {
    let commands: &[&[&str]] = &[
        &["check"], &["spf", "check"], &["dkim", "keygen"], &["dkim", "record"], &["dkim", "testkey"],
        &["dkim", "sign"], &["dkim", "verify"], &["dmarc", "lookup"], &["arc", "verify"], &["arc", "seal"],
        &["verify"], &["analyze"], &["milter"], &["policy"], &["serve"], &["user", "add"],
        &["user", "password"], &["user", "list"], &["user", "delete"], &["user", "revoke"], &["user", "token"],
        &["report", "import"], &["report", "show"],
    ];
    for c in commands {
        let mut a = c.to_vec();
        a.push("--help");
        let o = netjes(&a, None);
        let help = String::from_utf8_lossy(&o.stdout);
        assert!(help.contains("EXAMPLES:"), "{c:?} has no examples:\n{help}");
        let lines: Vec<&str> = help.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            let is_option = (t.starts_with("--") || (t.starts_with('-') && t.chars().nth(1).is_some_and(|c| c.is_ascii_alphabetic())))
                && l.starts_with("  ");
            if is_option {
                let next = lines.get(i + 1).copied().unwrap_or("");
                let documented = t.contains("  ") || (!next.trim().is_empty() && !next.trim_start().starts_with('-'));
                assert!(documented, "{c:?}: {t} has no help line");
            }
        }
    }
}

#[test]
fn help_documents_exit_codes() {
    let o = netjes(&["--help"], None);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("EXIT CODES") && s.contains("temperror"), "{s}");
    let o = netjes(&["verify", "--help"], None);
    assert!(String::from_utf8_lossy(&o.stdout).contains("EXIT CODES"));
}

#[tokio::test]
async fn arc_seal_then_verify() {
    let dir = tempfile::tempdir().unwrap();
    let value = keygen(dir.path(), "arc", "rsa");
    let split = value
        .as_bytes()
        .chunks(200)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect::<Vec<_>>()
        .join(" ");
    let dns = TestDns::start_str(&format!("arc._domainkey.example.com. TXT {split}\n")).await;
    let ns = dns.addr().to_string();
    let key = dir.path().join("arc.private").to_string_lossy().to_string();
    let msg = format!("Authentication-Results: lists.example.com; spf=pass smtp.mailfrom=alice@example.org; dkim=none\r\n{MESSAGE}");
    let o = run(
        args(&[
            "arc",
            "seal",
            "--domain",
            "example.com",
            "--selector",
            "arc",
            "--key",
            &key,
            "--authserv-id",
            "lists.example.com",
            "--nameserver",
            &ns,
        ]),
        Some(msg.into_bytes()),
    )
    .await;
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let sealed = String::from_utf8(o.stdout).unwrap();
    assert!(
        sealed.starts_with("ARC-Seal: i=1;") || sealed.starts_with("ARC-Seal:"),
        "{sealed}"
    );
    assert!(sealed.contains("cv=none"));
    assert!(sealed.contains("ARC-Authentication-Results: i=1; lists.example.com; spf=pass smtp.mailfrom=alice@example.org; dkim=none"), "{sealed}");
    let o = run(
        args(&["arc", "verify", "--json", "--nameserver", &ns]),
        Some(sealed.into_bytes()),
    )
    .await;
    assert_eq!(code(&o), 0);
    let j = json(&o);
    assert_eq!(j["result"], "pass");
    assert_eq!(j["instances"], 1);
    assert_eq!(j["oldest_pass"], 0);
}

#[tokio::test]
async fn check_reads_a_zone_file_before_it_is_published() {
    // Answers come from the file; nothing outside it is needed, and the
    // blocklists are switched off so that no list is asked.
    let dns = TestDns::start_str("").await;
    let ns = dns.addr().to_string();
    let zone = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../samples/example.com.zone"
    );
    let o = run(
        args(&[
            "check",
            "example.com",
            "--zone",
            zone,
            "--ip",
            "192.0.2.25",
            "--no-blocklists",
            "--json",
            "--nameserver",
            &ns,
            "--dns-timeout",
            "1",
        ]),
        None,
    )
    .await;
    let j = json(&o);
    assert_eq!(j["domain"], "example.com");
    let ids: Vec<(String, String)> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_string(),
                f["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let status = |id: &str| {
        ids.iter()
            .find(|(i, _)| i == id)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("{id} missing: {ids:?}"))
    };
    assert_eq!(status("mx.host.mail.example.com"), "pass");
    assert_eq!(status("ptr.192.0.2.25"), "pass");
    assert_eq!(status("spf.ip"), "pass");
    assert_eq!(status("dkim.default"), "warn");
    assert_eq!(status("dmarc.policy"), "warn");
    // Warnings only: exit 0.
    assert_eq!(code(&o), 0, "{ids:?}");

    // A zone with an error names the line.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.zone");
    std::fs::write(&bad, "@ MX 10 mail\nmail A 192.0.2.300\n").unwrap();
    let o = run(
        args(&["check", "example.com", "--zone", bad.to_str().unwrap()]),
        None,
    )
    .await;
    assert_eq!(code(&o), 4);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("line 2"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = run(args(&["check", "not a domain"]), None).await;
    assert_eq!(code(&o), 2);
}

#[tokio::test]
async fn check_exits_1_on_failures_and_3_when_dns_fails() {
    let dns = TestDns::start_str(
        "bare.example. A 192.0.2.1\nbroken.example. SERVFAIL\n_dmarc.broken.example. SERVFAIL\n",
    )
    .await;
    let ns = dns.addr().to_string();
    let o = run(
        args(&[
            "check",
            "bare.example",
            "--no-blocklists",
            "--nameserver",
            &ns,
        ]),
        None,
    )
    .await;
    assert_eq!(code(&o), 1);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("publish: _dmarc.bare.example. IN TXT \"v=DMARC1; p=none"),
        "{out}"
    );
    let o = run(
        args(&[
            "check",
            "broken.example",
            "--no-blocklists",
            "--nameserver",
            &ns,
        ]),
        None,
    )
    .await;
    assert_eq!(code(&o), 3, "{}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("SPF could not be checked"));
}

/// analyze: sign a message with a fresh key, then test it through the test
/// DNS server; the terminal, --json and --html carry the same mark.
#[tokio::test]
async fn analyze_scores_a_signed_message_and_a_bare_one() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = keygen(dir.path(), "r1", "rsa");
    let zone = format!(
        "{ZONE}\nr1._domainkey.example.com. TXT \"{}\" \"{}\"\n1.2.0.192.in-addr.arpa. PTR mail.example.com.\nmail.example.com. A 192.0.2.1\n",
        &rsa[..200],
        &rsa[200..]
    );
    let dns = TestDns::start_str(&zone).await;
    let ns = dns.addr().to_string();
    let key = dir.path().join("r1.private").to_string_lossy().to_string();
    let o = run(
        args(&[
            "dkim",
            "sign",
            "--domain",
            "example.com",
            "--selector",
            "r1",
            "--key",
            &key,
        ]),
        Some(MESSAGE.as_bytes().to_vec()),
    )
    .await;
    let signed = o.stdout;
    let path = dir.path().join("signed.eml");
    std::fs::write(&path, &signed).unwrap();
    let html = dir.path().join("report.html");
    let env = [
        "--ip",
        "192.0.2.1",
        "--helo",
        "mail.example.com",
        "--mail-from",
        "alice@example.com",
        "--no-blocklists",
        "--nameserver",
        &ns,
    ];

    let mut a = vec![
        "analyze",
        path.to_str().unwrap(),
        "--json",
        "--html",
        html.to_str().unwrap(),
    ];
    a.extend(env);
    let o = run(args(&a), None).await;
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    // A personal message: only the missing List-Unsubscribe and the missing
    // Received chain are noted.
    assert_eq!(
        j["score"],
        9.7,
        "{}",
        serde_json::to_string_pretty(&j["why_spam"]).unwrap()
    );
    assert_eq!(j["auth"]["dmarc"]["result"], "pass");
    assert_eq!(j["envelope"]["source"], "command line");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("9.7") && page.starts_with("<!doctype html>"));

    // The same message unsigned, from an address SPF does not allow:
    // capped at 6 or below, the reasons first, and --min-score fails it.
    let mut a = vec!["analyze", "--min-score", "8", "--color", "never"];
    a.extend(
        env.iter()
            .map(|s| if *s == "192.0.2.1" { "203.0.113.9" } else { s }),
    );
    let o = run(args(&a), Some(MESSAGE.as_bytes().to_vec())).await;
    assert_eq!(code(&o), 1);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Why this is spam")
            && out.contains("[auth.spf-fail]")
            && out.contains("[auth.dkim-none]"),
        "{out}"
    );

    // The penalty table, and a bad configuration reported whole (exit 2).
    let o = run(args(&["analyze", "--penalties"]), None).await;
    assert!(String::from_utf8_lossy(&o.stdout).contains("auth.dmarc-fail"));
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[penalties]\n\"no.such\" = 1\n\"format.no-date\" = 99\n",
    )
    .unwrap();
    let o = run(
        args(&[
            "analyze",
            "--config",
            cfg.to_str().unwrap(),
            path.to_str().unwrap(),
        ]),
        None,
    )
    .await;
    assert_eq!(code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no.such") && err.contains("format.no-date"),
        "{err}"
    );
    // Not a message at all.
    let o = run(
        args(&["analyze", "--no-blocklists", "--nameserver", &ns]),
        Some(b"\x00\x01 not mail".to_vec()),
    )
    .await;
    assert_eq!(code(&o), 4);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an RFC 5322 message"));
}

/// `netjes policy` as a daemon: it answers over its socket, reloads on
/// SIGHUP (keeping the old configuration when the new one is bad), serves
/// metrics, and exits 0 on SIGTERM.
#[tokio::test]
async fn policy_daemon_answers_reloads_and_stops() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start_str(ZONE).await;
    let port = free_port();
    let mport = free_port();
    let cfg = dir.path().join("policy.toml");
    std::fs::write(&cfg, "[greylist]\nenabled = false\n").unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_netjes"))
        .args([
            "policy",
            "--config",
            cfg.to_str().unwrap(),
            "--listen",
            &format!("inet:127.0.0.1:{port}"),
            "--metrics",
            &format!("127.0.0.1:{mport}"),
        ])
        .args([
            "--data-dir",
            dir.path().join("state").to_str().unwrap(),
            "--nameserver",
            &dns.addr().to_string(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ask = move |sender: &str| -> String {
        for _ in 0..100 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                write!(s, "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=203.0.113.9\nhelo_name=x\nsender={sender}\nrecipient=b@example.org\ninstance=1\n\n").unwrap();
                let mut line = String::new();
                BufReader::new(s).read_line(&mut line).unwrap();
                return line;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("netjes policy did not listen");
    };
    let a = tokio::task::spawn_blocking(move || ask("alice@example.com"))
        .await
        .unwrap();
    assert!(a.starts_with("action=550 5.7.23 "), "{a}");
    // A bad configuration on SIGHUP: logged, and the old one stays.
    std::fs::write(&cfg, "[greylist]\nenabled = false\nbogus = 1\n").unwrap();
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut m = String::new();
    std::net::TcpStream::connect(("127.0.0.1", mport))
        .map(|mut s| {
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
            s.read_to_string(&mut m).unwrap();
        })
        .unwrap();
    assert!(
        m.contains("netjes_policy_requests_total{action=\"reject\",check=\"spf\"} 1"),
        "{m}"
    );
    let a = tokio::task::spawn_blocking(move || ask("alice@example.com"))
        .await
        .unwrap();
    assert!(a.starts_with("action=550"), "still serving: {a}");
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("reload refused") && log.contains("bogus"),
        "{log}"
    );
}

/// `netjes milter` as a daemon: it signs with the keys of its TOML, picks
/// up a new key on SIGHUP, keeps the old configuration when the new one is
/// bad (logging every error), and exits 0 on SIGTERM.
#[tokio::test]
async fn milter_daemon_signs_reloads_and_stops() {
    use netjes_auth::dkim::{KeyAlgorithm, PrivateKey};
    use netjes_milter::client::Client;
    use netjes_milter::protocol::Response;
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start_str(ZONE).await;
    let (port, mport) = (free_port(), free_port());
    for (name, alg, bits) in [
        ("one", KeyAlgorithm::Rsa, 2048),
        ("two", KeyAlgorithm::Ed25519, 256),
    ] {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.path().join(format!("{name}.private"));
        std::fs::write(&p, PrivateKey::generate(alg, bits).unwrap().to_pkcs8_pem()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let entry = |domain: &str, selector: &str| {
        format!(
            "[[signing_keys]]\nfrom = [\"{domain}\"]\ndomain = \"{domain}\"\nselector = \"{selector}\"\nkey = \"{}\"\n",
            dir.path().join(format!("{selector}.private")).display()
        )
    };
    let head = format!(
        "listen = \"inet:{port}@127.0.0.1\"\nmetrics = \"127.0.0.1:{mport}\"\ndata_dir = \"{}\"\n",
        dir.path().join("data").display()
    );
    let cfg = dir.path().join("milter.toml");
    std::fs::write(&cfg, format!("{head}{}", entry("example.com", "one"))).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_netjes"))
        .args(["milter", "--config", cfg.to_str().unwrap()])
        .args(["--nameserver", &dns.addr().to_string()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let selector_of = |r: &[Response]| -> Option<String> {
        r.iter().find_map(|x| match x {
            Response::InsertHeader { name, value, .. } if name == "DKIM-Signature" => value
                .split(';')
                .find_map(|t| t.trim().strip_prefix("s=").map(String::from)),
            _ => None,
        })
    };
    let from_net = MESSAGE.replace("alice@example.com", "bob@example.net");
    let mut c = Client::connect(addr, "127.0.0.1").await;
    let r = c.message("alice@example.com", MESSAGE, None).await;
    assert_eq!(selector_of(&r).as_deref(), Some("one"), "{r:?}");
    assert_eq!(
        selector_of(&c.message("bob@example.net", &from_net, None).await),
        None
    );

    let pid = child.id().to_string();
    let hup = || {
        assert!(std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success())
    };
    // A second domain's key, read on SIGHUP.
    std::fs::write(
        &cfg,
        format!(
            "{head}{}{}",
            entry("example.com", "one"),
            entry("example.net", "two")
        ),
    )
    .unwrap();
    hup();
    let mut signed = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        signed = selector_of(&c.message("bob@example.net", &from_net, None).await);
        if signed.is_some() {
            break;
        }
    }
    assert_eq!(signed.as_deref(), Some("two"));
    // A bad file: refused whole, every error logged, the old keys stay.
    std::fs::write(
        &cfg,
        format!(
            "{head}internal_hosts = [\"not-an-address\"]\n{}",
            entry("example.org", "no such selector")
        ),
    )
    .unwrap();
    hup();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = c.message("bob@example.net", &from_net, None).await;
    assert_eq!(selector_of(&r).as_deref(), Some("two"), "{r:?}");
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(
        log.contains("reload refused")
            && log.contains("not-an-address")
            && log.contains("\"no such selector\" is not a selector"),
        "{log}"
    );
}

/// `netjes serve` as users start it: the first start makes the store and
/// prints a one-time admin password that logs in; the test inbox and the
/// metrics answer; `netjes user` manages users on the same store.
#[tokio::test(flavor = "multi_thread")]
async fn serve_starts_on_an_empty_data_dir_and_users_are_managed() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let dns = TestDns::start_str(ZONE).await;
    let (http, smtp, metrics) = (free_port(), free_port(), free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_netjes"))
        .args([
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--http",
            &format!("127.0.0.1:{http}"),
            "--smtp",
            &format!("127.0.0.1:{smtp}"),
        ])
        .args([
            "--metrics",
            &format!("127.0.0.1:{metrics}"),
            "--test-domain",
            "test.example",
            "--hostname",
            "mx.test.example",
            "--nameserver",
            &dns.addr().to_string(),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let password = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        for _ in 0..50 {
            line.clear();
            err.read_line(&mut line).unwrap();
            if let Some(p) = line.strip_prefix("First start: log in as admin with the password ") {
                // Keep reading the log, so that the daemon's writes never fail.
                std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
                return p.trim().to_string();
            }
        }
        panic!("no first-start password")
    })
    .await
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(
            std::fs::metadata(data.join("master.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(data.join("netjes.sqlite"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
    let get = move |port: u16, req: String| -> String {
        for _ in 0..100 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                s.write_all(req.as_bytes()).unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                return out;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("nothing listens on {port}");
    };
    let health =
        tokio::task::spawn_blocking(move || get(http, "GET /healthz HTTP/1.0\r\n\r\n".into()))
            .await
            .unwrap();
    assert!(
        health.starts_with("HTTP/1.0 200") && health.ends_with("ok"),
        "{health}"
    );
    // The printed password logs in (the login form's token is the cookie's).
    let page = tokio::task::spawn_blocking(move || get(http, "GET /login HTTP/1.0\r\n\r\n".into()))
        .await
        .unwrap();
    let csrf = page
        .split("netjes_csrf=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body = format!("csrf={csrf}&user=admin&password={password}&next=%2Fdomains");
    let req = format!("POST /login HTTP/1.0\r\nCookie: netjes_csrf={csrf}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    let login = tokio::task::spawn_blocking(move || get(http, req))
        .await
        .unwrap();
    assert!(
        login.starts_with("HTTP/1.0 303") && login.contains("netjes_session="),
        "{login}"
    );
    // The inbox greets, and refuses to relay.
    let banner = tokio::task::spawn_blocking(move || {
        get(
            smtp,
            "EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nQUIT\r\n".into(),
        )
    })
    .await
    .unwrap();
    assert!(
        banner.starts_with("220 mx.test.example") && banner.contains("550 5.7.1"),
        "{banner}"
    );
    let m =
        tokio::task::spawn_blocking(move || get(metrics, "GET /metrics HTTP/1.0\r\n\r\n".into()))
            .await
            .unwrap();
    assert!(
        m.contains("netjes_smtp_recipients_refused_total{reason=\"relay\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("netjes_http_requests_total{status=\"3xx\"} 1"),
        "{m}"
    );

    // netjes user, on the same store (SQLite allows the second writer).
    let user = |args: &[&str], stdin: &str| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_netjes"))
            .arg("user")
            .args(args)
            .args(["--data-dir", data.to_str().unwrap()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        c.wait_with_output().unwrap()
    };
    let out = user(&["add", "bob"], "a long enough password\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = user(&["add", "bob"], "a long enough password\n");
    assert_eq!(out.status.code(), Some(2), "a second bob");
    let out = user(&["add", "carol"], "short\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("10 to 1024"));
    let out = user(&["token", "bob", "--label", "ci"], "");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("nj_"), "{token}");
    let req = format!("GET /api/domains HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n");
    let list = tokio::task::spawn_blocking(move || get(http, req))
        .await
        .unwrap();
    assert!(
        list.starts_with("HTTP/1.0 200") && list.ends_with("[]"),
        "{list}"
    );
    // list, revoke and delete.
    let out = user(&["list", "--json"], "");
    let users: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bob = users.as_array().unwrap().iter().find(|u| u["name"] == "bob").unwrap();
    assert_eq!(bob["tokens"], serde_json::json!(["ci"]));
    let out = user(&["revoke", "bob", "--label", "ci"], "");
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked 1"));
    let req = format!("GET /api/domains HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n");
    let after = tokio::task::spawn_blocking(move || get(http, req)).await.unwrap();
    assert!(after.starts_with("HTTP/1.0 401"), "a revoked token: {after}");
    assert!(user(&["delete", "bob"], "").status.success());
    let out = user(&["list"], "");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("bob"));
    let out = user(&["delete", "admin"], "");
    assert_eq!(out.status.code(), Some(2), "the last user stays");

    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// State files under `umask 000`: the policy service's, the milter's and
/// serve's data directories are 0700 and their files 0600 (SQLite's -wal
/// and -shm included); a data directory everyone may write to is refused
/// with a clear error.
#[tokio::test]
async fn state_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start_str(ZONE).await;
    let ns = dns.addr().to_string();
    let bin = env!("CARGO_BIN_EXE_netjes");
    let (pport, mport, hport, sport) = (free_port(), free_port(), free_port(), free_port());
    let d = |n: &str| dir.path().join(n).display().to_string();
    let milter_cfg = dir.path().join("milter.toml");
    std::fs::write(&milter_cfg, format!("listen = \"inet:{mport}@127.0.0.1\"\ndata_dir = \"{}\"\n", d("milter"))).unwrap();
    let cmds = [
        format!("{bin} policy --listen inet:127.0.0.1:{pport} --data-dir {} --nameserver {ns}", d("policy")),
        format!("{bin} milter --config {} --nameserver {ns}", milter_cfg.display()),
        format!("{bin} serve --data-dir {} --http 127.0.0.1:{hport} --smtp 127.0.0.1:{sport} --nameserver {ns}", d("serve")),
    ];
    let mut children = Vec::new();
    for c in &cmds {
        children.push(
            std::process::Command::new("sh")
                .args(["-c", &format!("umask 000; exec {c}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    // Under a loaded test run, serve's first start (its master key, the
    // first user's password hash) can take seconds: 30 are allowed.
    let listening = |p: u16| (0..300).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", p)).is_ok()
    });
    for (name, p) in [("policy", pport), ("milter", mport), ("serve", hport)] {
        assert!(listening(p), "{name} did not listen on port {p}");
    }
    let mode = |p: std::path::PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    for (sub, files) in [
        ("policy", &["policy.sqlite", "policy.journal"][..]),
        ("milter", &["verdicts.sqlite"][..]),
        ("serve", &["netjes.sqlite", "master.key"][..]),
    ] {
        assert_eq!(mode(dir.path().join(sub)), 0o700, "{sub}");
        for f in files {
            assert_eq!(mode(dir.path().join(sub).join(f)), 0o600, "{sub}/{f}");
        }
        for e in std::fs::read_dir(dir.path().join(sub)).unwrap() {
            let e = e.unwrap();
            assert_eq!(mode(e.path()) & 0o077, 0, "{}", e.path().display());
        }
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    // A data directory everyone may write to: refused, and said why.
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = run(
        args(&["policy", "--listen", &format!("inet:127.0.0.1:{}", free_port()), "--data-dir", open.to_str().unwrap(), "--nameserver", &ns]),
        None,
    )
    .await;
    assert_ne!(code(&o), 0);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("everyone may write to this directory"), "{err}");
}

/// `netjes check example.com | head -1`: a reader that goes away ends
/// netjes quietly with exit 0 (before: a panic, exit 101). With --json an
/// error is JSON on standard output too, usage errors included.
#[tokio::test]
async fn a_closed_pipe_is_quiet_and_errors_are_json() {
    let dns = TestDns::start_str("").await;
    let ns = dns.addr().to_string();
    let zone = concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/example.com.zone");
    let ns2 = ns.clone();
    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_netjes"))
            .args(["check", "example.com", "--zone", zone, "--no-blocklists", "--nameserver", &ns2])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before netjes writes its first line.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let o = run(args(&["dkim", "verify", "--json", "/nonexistent/file.eml"]), None).await;
    assert_eq!(code(&o), 4);
    let j = json(&o);
    assert_eq!(j["exit"], 4);
    assert!(j["error"].as_str().unwrap().contains("/nonexistent/file.eml"), "{j}");
    let o = run(args(&["spf", "check", "--json", "--ip", "not-an-ip", "--helo", "x"]), None).await;
    assert_eq!(code(&o), 2);
    assert_eq!(json(&o)["exit"], 2);
    // No negative zero in JSON.
    let o = run(args(&["check", "example.com", "--zone", zone, "--no-blocklists", "--json", "--nameserver", &ns]), None).await;
    assert!(!String::from_utf8_lossy(&o.stdout).contains("-0.0"));
}

/// `netjes report import` takes files, gzip and mail, counts a second copy
/// as a duplicate and keeps a rejected input with its reason; `netjes
/// report show` then names each source with its PTR and organisation,
/// classifies it, and says whether the domain is ready.
#[tokio::test]
async fn reports_are_imported_and_their_sources_shown() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (begin, end) = (now - 2 * 86400, now - 86400);
    let row = |ip: &str, n: u32, dkim: &str, spf: &str, d: &str| format!(
        "<record><row><source_ip>{ip}</source_ip><count>{n}</count><policy_evaluated><disposition>none</disposition><dkim>{dkim}</dkim><spf>{spf}</spf></policy_evaluated></row><identifiers><header_from>example.com</header_from></identifiers><auth_results><dkim><domain>{d}</domain><result>pass</result></dkim><spf><domain>example.com</domain><result>{spf}</result></spf></auth_results></record>"
    );
    let xml = format!(
        "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>google.com</org_name><email>noreply-dmarc-support@google.com</email><report_id>r1</report_id><date_range><begin>{begin}</begin><end>{end}</end></date_range></report_metadata><policy_published><domain>example.com</domain><p>none</p></policy_published>{}{}{}</feedback>",
        row("192.0.2.10", 900, "pass", "pass", "example.com"),
        row("198.51.100.7", 40, "fail", "fail", "sendgrid.net"),
        row("203.0.113.66", 60, "fail", "fail", "evil.example"),
    );
    let inbox = dir.path().join("reports");
    std::fs::create_dir(&inbox).unwrap();
    std::fs::write(inbox.join("google.com!example.com.xml"), &xml).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(xml.as_bytes()).unwrap();
    std::fs::write(inbox.join("again.xml.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(inbox.join("broken.xml"), "<feedback><report_metadata>").unwrap();
    let future = xml.replace("<report_id>r1</report_id>", "<report_id>r2</report_id>").replace(&format!("<end>{end}</end>"), &format!("<end>{}</end>", now + 10 * 86400));
    std::fs::write(inbox.join("future.xml"), future).unwrap();
    let zone = "10.2.0.192.in-addr.arpa. PTR mail.example.com.\nmail.example.com. A 192.0.2.10\nexample.com. TXT \"v=spf1 ip4:192.0.2.10 ip4:198.51.100.7 -all\"\n7.100.51.198.in-addr.arpa. PTR o1.ptr1234.sendgrid.net.\no1.ptr1234.sendgrid.net. A 198.51.100.7\n_dmarc.example.com. TXT \"v=DMARC1; p=none; rua=mailto:d@example.com\"\nexample.com. MX 10 mail.example.com.\n";
    let dns = TestDns::start_str(zone).await;
    let ns = dns.addr().to_string();
    let d = data.to_str().unwrap().to_string();
    let key = "0".repeat(64);
    let run_env = |a: Vec<String>| {
        let key = key.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_netjes"))
                .args(&a)
                .env("NETJES_MASTER_KEY", key)
                .env_remove("NETJES_NAMESERVER")
                .output()
                .unwrap()
        })
    };
    let o = run_env(args(&["report", "import", "--json", "--data-dir", &d, inbox.to_str().unwrap()]))
        .await
        .unwrap();
    assert_eq!(code(&o), 1, "one input was rejected");
    let j = json(&o);
    let results: Vec<&str> = j.as_array().unwrap().iter().map(|r| r["result"].as_str().unwrap()).collect();
    assert_eq!(results.iter().filter(|r| **r == "accepted").count(), 1, "{j}");
    assert_eq!(results.iter().filter(|r| **r == "duplicate").count(), 1, "{j}");
    assert_eq!(results.iter().filter(|r| **r == "rejected").count(), 1, "{j}");
    let held = j.as_array().unwrap().iter().find(|r| r["result"] == "held").expect("the future report is held");
    assert!(held["reason"].as_str().unwrap().contains("ends in the future"), "{held}");
    let acc = j.as_array().unwrap().iter().find(|r| r["result"] == "accepted").unwrap();
    assert_eq!(acc["messages"], 1000);
    assert_eq!(acc["policy_domain"], "example.com");

    let o = run_env(args(&["report", "show", "example.com", "--json", "--data-dir", &d, "--nameserver", &ns]))
        .await
        .unwrap();
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let j = json(&o);
    let src = |ip: &str| j["sources"].as_array().unwrap().iter().find(|s| s["ip"] == ip).unwrap().clone();
    assert_eq!(src("192.0.2.10")["class"], "passing");
    assert_eq!(src("192.0.2.10")["ptr"], "mail.example.com");
    let sg = src("198.51.100.7");
    assert_eq!(sg["class"], "authorised-failing");
    assert_eq!(sg["organization"], "SendGrid");
    assert!(sg["advice"].as_str().unwrap().contains("signs with its own domain"));
    assert_eq!(src("203.0.113.66")["class"], "unauthorised");
    assert_eq!(j["readiness"]["messages"], 1000);
    assert!(j["readiness"]["sentence"].as_str().unwrap().starts_with("not ready: 1 source"));

    // The domain check follows the reports: with a source that sends for
    // the domain failing, it does not offer the p=quarantine record that
    // would send that mail to spam.
    let check = |extra: &[&str]| {
        let mut a = vec!["check", "example.com", "--json", "--no-blocklists", "--nameserver", &ns];
        a.extend_from_slice(extra);
        run_env(args(&a))
    };
    let policy = |j: &serde_json::Value| j["findings"].as_array().unwrap().iter().find(|f| f["id"] == "dmarc.policy").unwrap().clone();
    let plain = json(&check(&[]).await.unwrap());
    assert!(policy(&plain)["fix"]["value"].as_str().unwrap().contains("p=quarantine"), "{}", policy(&plain));
    let with = json(&check(&["--reports", &d]).await.unwrap());
    let p = policy(&with);
    assert!(p.get("fix").is_none(), "{p}");
    assert!(p["advice"].as_str().unwrap().starts_with("not yet: not ready: 1 source that sends for you fails DMARC and would be rejected: 198.51.100.7 (SendGrid)"), "{p}");
    let r = with["findings"].as_array().unwrap().iter().find(|f| f["id"] == "dmarc.reports").unwrap();
    assert!(r["message"].as_str().unwrap().contains("(1000 messages)"), "{r}");
    // A folder without a store is a usage error.
    let o = check(&["--reports", dir.path().to_str().unwrap()]).await.unwrap();
    assert_eq!(code(&o), 2);
}

/// `netjes tlspolicy` as a daemon: Postfix's socketmap answered (no
/// policy: NOTFOUND), metrics served, exit 0 on SIGTERM, the cache made
/// only netjes can read.
#[tokio::test]
async fn tlspolicy_daemon_answers_and_stops() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let dns = TestDns::start_str(ZONE).await;
    let (port, mport) = (free_port(), free_port());
    let data = dir.path().join("state");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_netjes"))
        .args(["tlspolicy", "--listen", &format!("inet:127.0.0.1:{port}"), "--metrics", &format!("127.0.0.1:{mport}")])
        .args(["--data-dir", data.to_str().unwrap(), "--nameserver", &dns.addr().to_string(), "--exempt", "partner.example"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let answer = tokio::task::spawn_blocking(move || {
        for _ in 0..100 {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                s.write_all(b"19:postfix example.com,").unwrap();
                let mut b = [0u8; 12];
                s.read_exact(&mut b).unwrap();
                return String::from_utf8_lossy(&b).into_owned();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("netjes tlspolicy did not listen");
    })
    .await
    .unwrap();
    assert_eq!(answer, "9:NOTFOUND ,");
    let mut m = String::new();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", mport)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    s.read_to_string(&mut m).unwrap();
    assert!(m.contains("netjes_tlspolicy_lookups_total{answer=\"none\"} 1"), "{m}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("tlspolicy.sqlite")).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
    let bad = netjes(&["tlspolicy", "--exempt", "not a domain", "--data-dir", dir.path().join("unused").to_str().unwrap()], None);
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
    assert!(!dir.path().join("unused").exists(), "a usage error touches nothing");
}

/// `netjes bounce`: a real bounce from the corpus (Microsoft 365's 5.1.10),
/// one on standard input, and an ordinary message, in JSON and in text.
#[test]
fn bounce_says_why_a_message_bounced() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../netjes-bounce/tests/corpus");
    let o365 = corpus.join("flanker/bounce_office365.eml");
    let o = netjes(&["bounce", "--json", o365.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0));
    let j = json(&o);
    let b = &j[0]["bounces"][0];
    assert_eq!((b["class"].as_str(), b["recipient"].as_str(), b["status"].as_str(), b["remote_code"].as_u64()), (Some("hard"), Some("noname@example.com"), Some("5.1.10"), Some(550)));
    let full = std::fs::read(corpus.join("flanker/bounce_mailbox-full.eml")).unwrap();
    let o = netjes(&["bounce"], Some(&full));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("soft") && text.contains("user@aol.com") && text.contains("5.2.2"), "{text}");
    let o = netjes(&["bounce", "--json"], Some(b"From: a@example.com\r\nSubject: hello\r\n\r\nhi\r\n"));
    assert_eq!(json(&o)[0]["kind"], "not-a-bounce");
    let o = netjes(&["bounce", "--json", "/nonexistent/bounce.eml"], None);
    assert_eq!(o.status.code(), Some(4));
    assert!(json(&o)["error"].as_str().unwrap().contains("cannot read"));
}

/// A complaint counts only when it names mail we delivered: `netjes
/// events --store` remembers what was delivered, `netjes bounce --store`
/// matches an ARF report's Message-ID to it, suppresses the recipient and
/// counts the complaint; a made-up report is left alone.
#[test]
fn a_complaint_about_our_mail_suppresses_and_counts_a_made_up_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("serve");
    let store = netjes_serve::store::Store::open(&data, netjes_serve::crypto::MasterKey::from_hex(&"0".repeat(64)).unwrap()).unwrap();
    complaints_on(data.to_str().unwrap(), &store, dir.path());
}

/// The same through serve's PostgreSQL: `--store` takes its URL.
#[test]
fn events_and_bounces_reach_a_store_in_postgres() {
    let pg = netjes_testdns::postgres::PostgresServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let settings = netjes_milter::verdicts_pg::config(&pg.url(), None, None).unwrap();
    let store = netjes_serve::store::Store::with(netjes_serve::store::open_postgres(settings).unwrap(), netjes_serve::crypto::MasterKey::from_hex(&"0".repeat(64)).unwrap());
    complaints_on(&pg.url(), &store, dir.path());
    // And the admin commands: a user added with --postgres logs in to
    // every serve on it.
    store.check_master().unwrap();
    let none = dir.path().join("none");
    let o = netjes(&["user", "add", "ops", "--postgres", &pg.url(), "--data-dir", none.to_str().unwrap()], Some(b"a long enough password\n"));
    assert_eq!(o.status.code(), Some(4), "no master key is made up for a shared database");
    assert!(!none.join("master.key").exists());
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, format!("{}\n", "1".repeat(64))).unwrap();
    let good = dir.path().join("good.key");
    std::fs::write(&good, format!("{}\n", "0".repeat(64))).unwrap();
    for f in [&wrong, &good] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let o = netjes(&["user", "add", "ops", "--postgres", &pg.url(), "--master-key-file", wrong.to_str().unwrap()], Some(b"a long enough password\n"));
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("master key is not the one"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = netjes(&["user", "add", "ops", "--postgres", &pg.url(), "--master-key-file", good.to_str().unwrap()], Some(b"a long enough password\n"));
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(store.check_login("ops", "a long enough password").unwrap().is_some());
}

/// `netjes milter --keys-from-store` needs serve's PostgreSQL and its
/// master key; without them it does not start.
#[test]
fn the_milter_takes_its_keys_from_serves_postgres_or_does_not_start() {
    let o = netjes(&["milter", "--keys-from-store", "--listen", "inet:0@127.0.0.1"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("keys_from_store: needs [store] url"), "{}", String::from_utf8_lossy(&o.stderr));
    let pg = netjes_testdns::postgres::PostgresServer::start_new();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.key");
    std::fs::write(&wrong, format!("{}\n", "1".repeat(64))).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let settings = netjes_milter::verdicts_pg::config(&pg.url(), None, None).unwrap();
    let store = netjes_serve::store::Store::with(netjes_serve::store::open_postgres(settings).unwrap(), netjes_serve::crypto::MasterKey::from_hex(&"0".repeat(64)).unwrap());
    store.check_master().unwrap();
    let o = netjes(&["milter", "--keys-from-store", "--postgres", &pg.url(), "--master-key-file", wrong.to_str().unwrap(), "--listen", "inet:0@127.0.0.1"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("master key is not the one"), "{}", String::from_utf8_lossy(&o.stderr));
}

fn complaints_on(spec: &str, store: &netjes_serve::store::Store, dir: &Path) {
    store.add_domain("shop.example").unwrap();
    store.set_webhook("shop.example", "https://hooks.shop.example/netjes").unwrap();
    let log = dir.join("mail.log");
    std::fs::write(
        &log,
        "Nov 30 06:15:15 mx postfix/cleanup[1]: 1A2B3C4D5E: message-id=<m1@shop.example>\n\
         Nov 30 06:15:15 mx postfix/qmgr[1]: 1A2B3C4D5E: from=<news@shop.example>, size=300, nrcpt=1 (queue active)\n\
         Nov 30 06:15:16 mx postfix/smtp[2]: 1A2B3C4D5E: to=<dave@isp.example>, relay=mx.isp.example[192.0.2.9]:25, delay=1, delays=0/0/0.5/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok)\n",
    )
    .unwrap();
    let o = netjes(&["events", "--store", spec, log.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let arf = |mid: &str| {
        format!(
            "From: fbl@isp.example\r\nTo: abuse@shop.example\r\nSubject: complaint\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=B\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n--B\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\nOriginal-Rcpt-To: <dave@isp.example>\r\n\r\n\
--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@shop.example\r\nTo: dave@isp.example\r\nMessage-ID: <{mid}>\r\n\r\n--B--\r\n"
        )
    };
    std::fs::write(dir.join("real.eml"), arf("m1@shop.example")).unwrap();
    std::fs::write(dir.join("forged.eml"), arf("made-up@shop.example")).unwrap();
    let o = netjes(&["bounce", "--store", spec, dir.join("forged.eml").to_str().unwrap(), dir.join("real.eml").to_str().unwrap()], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("forged.eml: not matched: <made-up@shop.example> is no message of ours"), "{err}");
    assert!(err.contains("real.eml: suppressed dave@isp.example for shop.example (complaint)"), "{err}");
    let list = store.suppressions("shop.example", "").unwrap();
    assert_eq!((list.len(), list[0].class.as_str()), (1, "complaint"));
    let rep = store.reputation("shop.example", 7).unwrap();
    assert_eq!((rep.delivered, rep.complaints, rep.complaint_rate), (1, 1, Some(1.0)));
    assert!(rep.warnings.iter().any(|w| w.contains("reported as spam")), "{:?}", rep.warnings);
    // The customer's webhook gets the delivery and the suppression.
    let db = netjes_serve::store::open_spec(std::ffi::OsStr::new(spec)).unwrap();
    let bodies: Vec<String> = db.prepare("SELECT body FROM webhook_outbox ORDER BY id").unwrap().query_map([], |r| r.get(0)).unwrap().map(|b| b.unwrap()).collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(bodies[0].contains("\"event\":\"delivered\"") && bodies[1].contains("\"event\":\"suppressed\"") && bodies[1].contains("complaint"), "{bodies:?}");
}

/// Every systemd unit in contrib/ passes `systemd-analyze verify` (with
/// netjes at the path the units name), and names a netjes command that
/// exists.
#[test]
fn the_systemd_units_are_valid() {
    let contrib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib");
    let Ok(analyze) = which("systemd-analyze") else {
        panic!("systemd-analyze (Debian's systemd) is needed to check the units");
    };
    let dir = tempfile::tempdir().unwrap();
    let mut units = Vec::new();
    for e in std::fs::read_dir(&contrib).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".service") || name.ends_with(".timer")) {
            continue;
        }
        // The unit as installed, with ExecStart pointing at this build.
        let text = std::fs::read_to_string(&p).unwrap().replace("/usr/local/bin/netjes", env!("CARGO_BIN_EXE_netjes"));
        let exec = text.lines().find_map(|l| l.strip_prefix("ExecStart=")).map(String::from);
        if let Some(exec) = exec {
            // The command and its flags parse (--help after them stops
            // before anything runs).
            let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
            let sub: Vec<&str> = args.iter().take_while(|a| !a.starts_with('-')).copied().collect();
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_netjes")).args(&sub).arg("--help").output().unwrap();
            assert!(o.status.success(), "{name}: netjes {} --help: {}", sub.join(" "), String::from_utf8_lossy(&o.stderr));
        }
        std::fs::write(dir.path().join(&name), text).unwrap();
        units.push(dir.path().join(&name));
    }
    assert!(units.len() >= 8, "{units:?}");
    let o = std::process::Command::new(analyze).arg("verify").args(&units).env("SYSTEMD_LOG_LEVEL", "warning").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    // A container without systemd running cannot resolve the users the
    // units name or load the dependencies; what matters are the units'
    // own errors.
    let own: Vec<&str> = err.lines().filter(|l| units.iter().any(|u| l.contains(u.file_name().unwrap().to_str().unwrap())) && !l.contains("Failed to resolve") && !l.contains("not found") && !l.contains("Unit is bound")).collect();
    assert!(own.is_empty(), "{err}");
}

fn which(cmd: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(cmd)).find(|f| f.exists())).ok_or(())
}
