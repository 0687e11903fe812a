//! Prometheus counters in the text exposition format, without a registry
//! crate: a map of (metric, labels) to a count, rendered on /metrics.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// A metric's name and its label pairs.
type Series = (String, Vec<(String, String)>);

#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Series, u64>>,
    help: Mutex<BTreeMap<String, String>>,
}

impl Metrics {
    pub fn describe(&self, name: &str, help: &str) {
        self.help.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), help.to_string());
    }

    pub fn inc(&self, name: &str, labels: &[(&str, &str)]) {
        let key = (name.to_string(), labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        *self.counters.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_insert(0) += 1;
    }

    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let key = (name.to_string(), labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>());
        self.counters.lock().unwrap_or_else(|p| p.into_inner()).get(&key).copied().unwrap_or(0)
    }

    pub fn render(&self) -> String {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let help = self.help.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), v) in counters.iter() {
            if name != last {
                if let Some(h) = help.get(name) {
                    out.push_str(&format!("# HELP {name} {h}\n"));
                }
                out.push_str(&format!("# TYPE {name} counter\n"));
                last = name;
            }
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))).collect();
            if l.is_empty() {
                out.push_str(&format!("{name} {v}\n"));
            } else {
                out.push_str(&format!("{name}{{{}}} {v}\n", l.join(",")));
            }
        }
        out
    }
}

/// Serves GET /metrics on `listener` until `shutdown` fires: a minimal
/// HTTP/1.0 answer, enough for Prometheus and curl.
pub async fn serve(listener: tokio::net::TcpListener, metrics: std::sync::Arc<Metrics>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let (mut s, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
            _ = shutdown.changed() => return,
        };
        let m = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let n = match tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let req = String::from_utf8_lossy(&buf[..n]);
            let resp = if req.starts_with("GET /metrics") {
                let body = m.render();
                format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n{body}", body.len())
            } else {
                "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string()
            };
            let _ = s.write_all(resp.as_bytes()).await;
        });
    }
}
