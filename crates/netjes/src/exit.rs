//! Exit codes, in one place (listed in `--help` and the README).

pub const OK: i32 = 0;
pub const NOT_PASSED: i32 = 1;
pub const USAGE: i32 = 2;
pub const TEMPORARY: i32 = 3;
pub const INPUT: i32 = 4;
pub const KEY_NOT_PUBLISHED: i32 = 5;
pub const KEY_DIFFERENT: i32 = 6;
pub const KEY_MALFORMED: i32 = 7;

/// A usage error found after clap (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Unreadable input (exit 4).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Input(pub String);

/// Prints the error with its chain and picks the exit code.
pub fn report(e: &anyhow::Error) -> i32 {
    eprint!("netjes: error: {e}");
    for cause in e.chain().skip(1) {
        eprint!(": {cause}");
    }
    eprintln!();
    if e.downcast_ref::<Usage>().is_some() {
        USAGE
    } else {
        INPUT
    }
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
