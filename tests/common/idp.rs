//! A test identity provider for the key-fetch tests: a std-only HTTP/1.1 server on
//! 127.0.0.1:0 whose answers the test sets per path while it runs ([`Idp::set`]), and that
//! records every request it gets (path, arrival time, which answer it was served), so a test can
//! wait for "the next fetch" instead of sleeping. Envoy reaches it through the `idp` cluster of
//! `envoy/test-minimal.yaml.tmpl` ([`crate::common::Envoy::start_with_idp`]).

use super::server::{next_request_line, read_line_lossy, Connection, LoopbackServer};
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What the server answers at one path.
#[derive(Clone, Debug)]
pub struct Answer {
    /// A short name for failure messages and for [`Idp::served`] ("503", "good jwks", ...).
    pub label: String,
    pub status: u16,
    pub content_type: String,
    pub body: Arc<Vec<u8>>,
}

impl Answer {
    pub fn new(label: &str, status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Answer {
            label: label.to_string(),
            status,
            content_type: content_type.to_string(),
            body: Arc::new(body.into()),
        }
    }

    /// 200 with a JSON body.
    pub fn json(label: &str, value: &serde_json::Value) -> Self {
        Self::new(label, 200, "application/json", value.to_string())
    }

    /// An error status with a short text body.
    pub fn status(label: &str, status: u16) -> Self {
        Self::new(label, status, "text/plain", format!("status {status}\n"))
    }
}

/// One request the server got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub path: String,
    pub at: Instant,
    /// The label of the answer it was served (`"404"` when nothing was set for its path).
    pub served: String,
}

#[derive(Default)]
struct State {
    answers: HashMap<String, Answer>,
    hits: Vec<Hit>,
}

pub struct Idp {
    server: LoopbackServer,
    state: Arc<Mutex<State>>,
}

impl Idp {
    pub fn start() -> io::Result<Idp> {
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let server = LoopbackServer::start(move |conn| {
            let _ = serve(conn, &st);
        })?;
        Ok(Idp { server, state })
    }

    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// `http://127.0.0.1:<port>`, the base URL (and issuer, for discovery).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port())
    }

    /// From now on, requests for `path` (without query) get `answer`.
    pub fn set(&self, path: &str, answer: Answer) {
        self.lock().answers.insert(path.to_string(), answer);
    }

    /// Every request so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.lock().hits.clone()
    }

    /// How many requests for `path` arrived so far.
    pub fn count(&self, path: &str) -> usize {
        self.lock().hits.iter().filter(|h| h.path == path).count()
    }

    /// How many requests for `path` were served the answer labelled `label`.
    pub fn served(&self, path: &str, label: &str) -> usize {
        self.lock()
            .hits
            .iter()
            .filter(|h| h.path == path && h.served == label)
            .count()
    }

    /// When the last request for `path` arrived.
    pub fn last_hit(&self, path: &str) -> Option<Instant> {
        self.lock()
            .hits
            .iter()
            .rev()
            .find(|h| h.path == path)
            .map(|h| h.at)
    }

    /// Requests for `path` that arrived in `[from, to)`.
    pub fn count_between(&self, path: &str, from: Instant, to: Instant) -> usize {
        self.lock()
            .hits
            .iter()
            .filter(|h| h.path == path && h.at >= from && h.at < to)
            .count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serves keep-alive GET requests on one connection until the peer closes (Envoy's cluster
/// connection pool reuses connections).
fn serve(conn: TcpStream, state: &Mutex<State>) -> io::Result<()> {
    let Connection {
        mut reader,
        mut writer,
    } = Connection::new(conn)?;
    loop {
        let Some(request_line) = next_request_line(&mut reader)? else {
            return Ok(());
        };
        let target = request_line.split(' ').nth(1).unwrap_or_default();
        let path = target.split('?').next().unwrap_or_default().to_string();
        // Headers: the key fetches are GETs without a body, so they are only skipped.
        loop {
            let Some(line) = read_line_lossy(&mut reader)? else {
                return Ok(());
            };
            if line.trim_end().is_empty() {
                break;
            }
        }
        let answer = {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            let answer = st
                .answers
                .get(&path)
                .cloned()
                .unwrap_or_else(|| Answer::status("404", 404));
            st.hits.push(Hit {
                path,
                at: Instant::now(),
                served: answer.label.clone(),
            });
            answer
        };
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
            answer.status,
            reason(answer.status),
            answer.content_type,
            answer.body.len()
        );
        writer.write_all(head.as_bytes())?;
        writer.write_all(&answer.body)?;
        writer.flush()?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
