//! The real mail the tests and benchmarks run over: every message of
//! `testdata/mail` (spam, ham, malformed) and every `.eml` elsewhere in
//! `testdata` (report mails, ARF, DKIM vectors). Sources and licences are
//! in testdata/SOURCES.md.

use std::path::{Path, PathBuf};

pub fn testdata() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("testdata is readable") {
        let p = e.expect("testdata entry").path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The messages of testdata/mail, without their notes and licences.
pub fn mail_corpus() -> Vec<PathBuf> {
    let mut all = Vec::new();
    walk(&testdata().join("mail"), &mut all);
    all.retain(|p| {
        !p.extension().is_some_and(|x| x == "json" || x == "md")
            && !p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("LICENSE"))
    });
    all.sort();
    all
}

/// [`mail_corpus`] and every .eml elsewhere in testdata.
pub fn all_messages() -> Vec<PathBuf> {
    let root = testdata();
    let mut all = mail_corpus();
    let mut rest = Vec::new();
    walk(&root, &mut rest);
    rest.retain(|p| p.extension().is_some_and(|x| x == "eml") && !p.starts_with(root.join("mail")));
    rest.sort();
    all.extend(rest);
    all
}
