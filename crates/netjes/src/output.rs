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
    let mut value = serde_json::to_value(v).expect("serializable");
    positive_zero(&mut value);
    println!("{}", serde_json::to_string_pretty(&value).expect("serializable"));
}

/// -0.0 (a score or penalty rounded from a tiny negative) as 0.0: a
/// script comparing with 0 should not meet a minus sign.
fn positive_zero(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n) if n.as_f64() == Some(0.0) && n.is_f64() => {
            *v = serde_json::json!(0.0);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(positive_zero),
        serde_json::Value::Object(o) => o.values_mut().for_each(positive_zero),
        _ => {}
    }
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
