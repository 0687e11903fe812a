//! Exit codes, in one place (listed in `--help` and the README).

pub const OK: i32 = 0;
pub const NOT_PASSED: i32 = 1;
pub const USAGE: i32 = 2;
pub const TEMPORARY: i32 = 3;
pub const INPUT: i32 = 4;
pub const KEY_NOT_PUBLISHED: i32 = 5;
pub const KEY_DIFFERENT: i32 = 6;
pub const KEY_MALFORMED: i32 = 7;
/// sysexits.h EX_TEMPFAIL: what a Postfix pipe command exits with so
/// that Postfix keeps the mail and tries again.
pub const EX_TEMPFAIL: i32 = 75;

/// A usage error found after clap (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Unreadable input (exit 4).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Input(pub String);

/// Prints the error with its chain on standard error and picks the exit
/// code; with --json also `{"error": ..., "exit": N}` on standard output,
/// so that a script reading the JSON sees the failure in it.
pub fn report(e: &anyhow::Error, json: bool) -> i32 {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        text.push_str(&format!(": {cause}"));
    }
    eprintln!("netjes: error: {text}");
    let code = if e.downcast_ref::<Usage>().is_some() {
        USAGE
    } else {
        INPUT
    };
    if json {
        println!("{}", serde_json::json!({ "error": text, "exit": code }));
    }
    code
}

/// `netjes check example.com | head -1`: when the reader goes away, the
/// next write fails with EPIPE, which println! turns into a panic (exit
/// 101 and a message). As ripgrep does, a closed pipe ends netjes quietly
/// with exit 0; every other panic is reported as before.
pub fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") || msg.contains("os error 32") {
            std::process::exit(OK);
        }
        default(info);
    }));
}

/// Reads a file, or standard input for "-" or no path.
pub fn read_input(path: Option<&std::path::Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        None => read_stdin(),
        Some(p) if p.as_os_str() == "-" => read_stdin(),
        Some(p) => {
            let cannot = |e: std::io::Error| {
                anyhow::anyhow!(Input(format!("cannot read {}: {e}", p.display())))
            };
            // Refused before reading, not after: the limit is on memory too.
            let size = std::fs::metadata(p).map_err(cannot)?.len();
            if size > netjes_auth::message::MAX_MESSAGE_BYTES as u64 {
                anyhow::bail!(Input(format!(
                    "{} is {size} octets, over the limit of {}",
                    p.display(),
                    netjes_auth::message::MAX_MESSAGE_BYTES
                )));
            }
            std::fs::read(p).map_err(cannot)
        }
    }
}

fn read_stdin() -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::io::stdin()
        .take(netjes_auth::message::MAX_MESSAGE_BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| anyhow::anyhow!(Input(format!("cannot read standard input: {e}"))))?;
    Ok(buf)
}
