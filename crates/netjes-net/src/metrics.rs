//! Prometheus counters and histograms in the text exposition format,
//! without a registry crate, rendered on /metrics for every daemon.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A metric's name and its label pairs.
type Series = (String, Vec<(String, String)>);

fn key(name: &str, labels: &[(&str, &str)]) -> Series {
    (
        name.to_string(),
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// Latency buckets in seconds: a milter or policy answer is milliseconds.
pub const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Series, u64>>,
    histograms: Mutex<BTreeMap<Series, Histogram>>,
    help: Mutex<BTreeMap<String, String>>,
}

impl Metrics {
    pub fn describe(&self, name: &str, help: &str) {
        self.help
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), help.to_string());
    }

    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        let key = key(name, labels);
        *self
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert(0) += 1;
    }

    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let key = key(name, labels);
        self.counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    /// Records one observation (seconds) in a histogram.
    pub fn observe(&self, name: &str, labels: &[(&str, &str)], value: f64) {
        let key = key(name, labels);
        let mut h = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        let e = h.entry(key).or_insert_with(|| Histogram {
            counts: vec![0; BUCKETS.len()],
            sum: 0.0,
            count: 0,
        });
        for (i, b) in BUCKETS.iter().enumerate() {
            if value <= *b {
                e.counts[i] += 1;
            }
        }
        e.sum += value;
        e.count += 1;
    }

    pub fn render(&self) -> String {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let help = self.help.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let label_text = |labels: &[(String, String)], extra: Option<(&str, String)>| -> String {
            let mut l: Vec<String> = labels
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}=\"{}\"",
                        v.replace('\\', "\\\\")
                            .replace('"', "\\\"")
                            .replace('\n', "\\n")
                    )
                })
                .collect();
            if let Some((k, v)) = extra {
                l.push(format!("{k}=\"{v}\""));
            }
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{}}}", l.join(","))
            }
        };
        let histograms = self.histograms.lock().unwrap_or_else(|p| p.into_inner());
        let mut last_h = "";
        for ((name, labels), h) in histograms.iter() {
            if name != last_h {
                if let Some(t) = help.get(name) {
                    out.push_str(&format!("# HELP {name} {t}\n"));
                }
                out.push_str(&format!("# TYPE {name} histogram\n"));
                last_h = name;
            }
            for (i, b) in BUCKETS.iter().enumerate() {
                out.push_str(&format!(
                    "{name}_bucket{} {}\n",
                    label_text(labels, Some(("le", b.to_string()))),
                    h.counts[i]
                ));
            }
            out.push_str(&format!(
                "{name}_bucket{} {}\n",
                label_text(labels, Some(("le", "+Inf".into()))),
                h.count
            ));
            out.push_str(&format!(
                "{name}_sum{} {}\n",
                label_text(labels, None),
                h.sum
            ));
            out.push_str(&format!(
                "{name}_count{} {}\n",
                label_text(labels, None),
                h.count
            ));
        }
        let mut last = "";
        for ((name, labels), v) in counters.iter() {
            if name != last {
                if let Some(h) = help.get(name) {
                    out.push_str(&format!("# HELP {name} {h}\n"));
                }
                out.push_str(&format!("# TYPE {name} counter\n"));
                last = name;
            }
            out.push_str(&format!("{name}{} {v}\n", label_text(labels, None)));
        }
        out
    }
}

/// Serves GET /metrics on `listener` until `shutdown` fires: a minimal
/// HTTP/1.0 answer, enough for Prometheus and curl. A few scrapers at a
/// time, each given 5 seconds in all.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: std::sync::Arc<Metrics>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    crate::serve(crate::Listener::Tcp(listener), crate::ConnLimits::total(16), shutdown, move |mut s| {
        let m = metrics.clone();
        async move {
            let answer = async {
                let mut buf = vec![0u8; 2048];
                let n = s.read(&mut buf).await?;
                let req = String::from_utf8_lossy(&buf[..n]);
                let resp = if req.starts_with("GET /metrics") {
                    let body = m.render();
                    format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                } else {
                    "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
                };
                s.write_all(resp.as_bytes()).await
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), answer).await;
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let m = Metrics::default();
        m.describe("x_total", "Things.");
        m.inc("x_total", &[("kind", "a\"b")]);
        m.inc("x_total", &[("kind", "a\"b")]);
        m.observe("lat_seconds", &[], 0.003);
        m.observe("lat_seconds", &[], 2.0);
        let t = m.render();
        assert!(
            t.contains(
                "# HELP x_total Things.\n# TYPE x_total counter\nx_total{kind=\"a\\\"b\"} 2\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("lat_seconds_bucket{le=\"0.0025\"} 0\n")
                && t.contains("lat_seconds_bucket{le=\"0.005\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("lat_seconds_bucket{le=\"+Inf\"} 2\n")
                && t.contains("lat_seconds_count 2\n"),
            "{t}"
        );
    }
}
