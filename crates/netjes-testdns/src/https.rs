//! A small HTTPS server on 127.0.0.1 that answers GET by Host header from
//! a table of pages (MTA-STS policies, for one), with a certificate for
//! every host from a throwaway CA. `up` set to false makes it answer 500,
//! as a broken policy host does.

use crate::smtp::Pki;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct StaticHttps {
    pub port: u16,
    pub ca_pem: String,
    pub up: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StaticHttps {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StaticHttps {
    /// `pages`: host name to the body served for any path on it.
    pub async fn start(pages: &[(&str, &str)]) -> StaticHttps {
        let hosts: Vec<&str> = pages.iter().map(|(h, _)| *h).collect();
        let pki = Pki::new(&hosts);
        let table: Arc<HashMap<String, String>> = Arc::new(pages.iter().map(|(h, b)| (h.to_ascii_lowercase(), b.to_string())).collect());
        let acceptor = tokio_rustls::TlsAcceptor::from(pki.server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let up2 = up.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, up, table) = (acceptor.clone(), up2.clone(), table.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buf = vec![0u8; 8192];
                    let n = tls.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
                    let host = req.lines().find_map(|l| l.strip_prefix("host:")).map(|h| h.trim().split(':').next().unwrap_or("").to_string()).unwrap_or_default();
                    let answer = match (up.load(Ordering::SeqCst), table.get(&host)) {
                        (false, _) => "HTTP/1.1 500 Broken\r\nContent-Length: 0\r\n\r\n".to_string(),
                        (true, Some(body)) => format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
                        (true, None) => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
                    };
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        StaticHttps { port, ca_pem: pki.ca_pem, up, task }
    }
}
