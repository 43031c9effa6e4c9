//! The tests' upstream: a std-only HTTP/1.1 server on 127.0.0.1:0 that answers every request
//! `200 hello from upstream` and counts what reached it, so a test can tell "passed the filter"
//! from "answered by the filter".

use super::server::{next_request_line, read_line_lossy, Connection, LoopbackServer};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub const UPSTREAM_BODY: &str = "hello from upstream";

pub struct Upstream {
    server: LoopbackServer,
    hits: Arc<AtomicUsize>,
    paths: Arc<Mutex<Vec<String>>>,
}

impl Upstream {
    pub fn start() -> io::Result<Upstream> {
        let hits = Arc::new(AtomicUsize::new(0));
        let paths = Arc::new(Mutex::new(Vec::new()));
        let (h, p) = (hits.clone(), paths.clone());
        let server = LoopbackServer::start(move |conn| {
            let _ = serve(conn, &h, &p);
        })?;
        Ok(Upstream {
            server,
            hits,
            paths,
        })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Requests that reached the upstream so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Paths of the requests that reached the upstream (complete or not), in order.
    pub fn paths(&self) -> Vec<String> {
        self.paths.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// Serves keep-alive requests on one connection until the peer closes.
fn serve(conn: TcpStream, hits: &AtomicUsize, paths: &Mutex<Vec<String>>) -> io::Result<()> {
    let Connection {
        mut reader,
        mut writer,
    } = Connection::new(conn)?;
    loop {
        let Some(request_line) = next_request_line(&mut reader)? else {
            return Ok(());
        };
        let path = request_line
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .to_string();
        // Recorded as soon as the request line arrives: a request whose body never comes
        // still shows that the upstream saw it.
        if let Ok(mut p) = paths.lock() {
            p.push(path);
        }
        let mut content_length = 0usize;
        let mut chunked = false;
        loop {
            let Some(line) = read_line_lossy(&mut reader)? else {
                return Ok(());
            };
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                let (n, v) = (n.trim(), v.trim());
                if n.eq_ignore_ascii_case("content-length") {
                    content_length = v.parse().unwrap_or(0);
                } else if n.eq_ignore_ascii_case("transfer-encoding")
                    && v.eq_ignore_ascii_case("chunked")
                {
                    chunked = true;
                }
            }
        }
        if chunked {
            loop {
                let size_line = read_line_lossy(&mut reader)?.unwrap_or_default();
                let size =
                    usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                        .unwrap_or(0);
                let mut skip = vec![0u8; size + 2];
                reader.read_exact(&mut skip)?;
                if size == 0 {
                    break;
                }
            }
        } else {
            let mut body = vec![0u8; content_length];
            reader.read_exact(&mut body)?;
        }
        hits.fetch_add(1, Ordering::SeqCst);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Upstream: yes\r\nContent-Length: {}\r\n\r\n{UPSTREAM_BODY}",
            UPSTREAM_BODY.len()
        );
        writer.write_all(response.as_bytes())?;
    }
}
