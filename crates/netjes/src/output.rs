//! Terminal output: colour only on a terminal (or when asked), JSON on --json.

use owo_colors::OwoColorize;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

static COLOR: AtomicBool = AtomicBool::new(false);

pub fn init_color(choice: ColorChoice) {
    use std::io::IsTerminal;
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    COLOR.store(on, Ordering::Relaxed);
}

fn color() -> bool {
    COLOR.load(Ordering::Relaxed)
}

/// Whether output is coloured (a TTY, or --color always).
pub fn colour_enabled() -> bool {
    color()
}

/// How a result reads: good, doubtful, bad or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Warn,
    Bad,
    Neutral,
}

pub fn tone_of(result: &str) -> Tone {
    match result {
        "pass" | "key OK" => Tone::Good,
        "fail" | "permerror" | "policy" => Tone::Bad,
        "softfail" | "temperror" | "neutral" => Tone::Warn,
        _ => Tone::Neutral,
    }
}

pub fn mark(t: Tone) -> String {
    let (sym, s) = match t {
        Tone::Good => ("✓", 0),
        Tone::Warn => ("!", 1),
        Tone::Bad => ("✗", 2),
        Tone::Neutral => ("·", 3),
    };
    if !color() {
        return sym.to_string();
    }
    match s {
        0 => sym.green().bold().to_string(),
        1 => sym.yellow().bold().to_string(),
        2 => sym.red().bold().to_string(),
        _ => sym.dimmed().to_string(),
    }
}

pub fn result_word(result: &str) -> String {
    if !color() {
        return result.to_string();
    }
    match tone_of(result) {
        Tone::Good => result.green().bold().to_string(),
        Tone::Warn => result.yellow().bold().to_string(),
        Tone::Bad => result.red().bold().to_string(),
        Tone::Neutral => result.bold().to_string(),
    }
}

pub fn heading(s: &str) -> String {
    if color() {
        s.bold().to_string()
    } else {
        s.to_string()
    }
}

pub fn dim(s: &str) -> String {
    if color() {
        s.dimmed().to_string()
    } else {
        s.to_string()
    }
}

pub fn print_json<T: serde::Serialize>(v: &T) {
    let text = serde_json::to_string_pretty(v).expect("serializable");
    println!("{}", positive_zero(&text));
}

/// -0.0 (a score or penalty rounded from a tiny negative) as 0.0: a
/// script comparing with 0 should not meet a minus sign. Numbers are
/// found outside strings, so text that mentions "-0.0" is left alone; the
/// other numbers keep serde's shortest form (9.7 stays 9.7).
fn positive_zero(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in json.char_indices() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        if c == '-' {
            let rest = &json[i + 1..];
            let len = rest
                .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
                .unwrap_or(rest.len());
            let number = &rest[..len];
            if !number.is_empty() && number.chars().all(|ch| ch == '0' || ch == '.') {
                // Drop the sign; the digits follow as they are.
                continue;
            }
        }
        out.push(c);
    }
    out
}


/// One "label: value" line of a report.
pub fn field(label: &str, value: impl std::fmt::Display) {
    println!("  {:<14} {}", dim(label), value);
}

/// One DKIM signature's verdict, with the reason and the warnings.
pub fn print_dkim(d: &netjes_auth::dkim::DkimSignatureReport, indent: &str) {
    let bits = d
        .key_bits
        .map(|b| format!(", {b}-bit key"))
        .unwrap_or_default();
    println!(
        "{indent}{} dkim   {} d={} s={} ({}{bits})",
        mark(tone_of(d.result.as_str())),
        result_word(d.result.as_str()),
        d.domain,
        d.selector,
        d.algorithm
    );
    if let Some(r) = &d.reason {
        field(&format!("{indent} why"), r);
    }
    for w in &d.warnings {
        field(&format!("{indent} warning"), w);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn negative_zero_loses_its_sign_and_nothing_else_changes() {
        let j = "{\"a\": -0.0, \"b\": [-0, -0.5, 9.7], \"c\": \"-0.0 in text\"}";
        assert_eq!(
            super::positive_zero(j),
            "{\"a\": 0.0, \"b\": [0, -0.5, 9.7], \"c\": \"-0.0 in text\"}"
        );
    }
}
