//! HTTP/2 for the tests: runs `tests/tools/h2_client.py` (Python's `h2` library, installed into
//! `.venv` by `scripts/setup.sh`), which sends raw requests over one h2c prior-knowledge
//! connection (a new one only when Envoy ends the previous), odd bytes included.
//!
//! The Python is `BCL_PYTHON`, else `<repo>/.venv/bin/python`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One HTTP/2 request. Every field is raw bytes.
#[derive(Debug, Clone)]
pub struct H2Request {
    pub method: Vec<u8>,
    pub path: Vec<u8>,
    pub authority: Vec<u8>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// `None`: no DATA frame.
    pub body: Option<Vec<u8>>,
    /// `Some`: a trailers HEADERS frame ends the stream (after the body).
    pub trailers: Option<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl H2Request {
    pub fn new(method: &str, path: &str) -> Self {
        H2Request {
            method: method.as_bytes().to_vec(),
            path: path.as_bytes().to_vec(),
            authority: b"127.0.0.1".to_vec(),
            headers: Vec::new(),
            body: None,
            trailers: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.as_bytes().to_vec(), value.as_ref().to_vec()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers
            .get_or_insert_with(Vec::new)
            .push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        self
    }

    fn to_json(&self) -> Value {
        let pairs = |v: &[(Vec<u8>, Vec<u8>)]| -> Value {
            v.iter()
                .map(|(n, v)| json!([latin1(n), latin1(v)]))
                .collect()
        };
        let mut out = json!({
            "method": latin1(&self.method),
            "path": latin1(&self.path),
            "authority": latin1(&self.authority),
            "headers": pairs(&self.headers),
        });
        if let Some(b) = &self.body {
            out["body"] = json!(latin1(b));
        }
        if let Some(t) = &self.trailers {
            out["trailers"] = pairs(t);
        }
        out
    }
}

/// What became of one request.
#[derive(Debug, Clone)]
pub struct H2Result {
    /// "response", "reset", "error" or "timeout".
    pub outcome: String,
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub error: String,
    /// Which connection of the run carried it (0 = the first).
    pub connection: u64,
    /// Milliseconds from sending the request's headers to its outcome.
    pub elapsed_ms: u64,
}

impl H2Result {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn summary(&self) -> String {
        let body = super::http::body_for_message(&self.body);
        format!(
            "h2 {} status={:?} headers={:?} body={body:?} {}",
            self.outcome, self.status, self.headers, self.error
        )
    }
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

fn unlatin1(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// The Python that has `h2`: `BCL_PYTHON`, else `<repo>/.venv/bin/python`.
pub fn python() -> PathBuf {
    std::env::var_os("BCL_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| super::repo_root().join(".venv/bin/python"))
}

/// Sends `requests` to `127.0.0.1:port` over HTTP/2, one at a time on one connection.
pub fn send_all(port: u16, requests: &[H2Request]) -> Vec<H2Result> {
    send_all_with(port, requests, 1, Duration::from_secs(10))
}

/// Sends `requests`, up to `concurrency` streams at once; each window of streams must finish
/// within `timeout` (else its results are "timeout").
pub fn send_all_with(
    port: u16,
    requests: &[H2Request],
    concurrency: usize,
    timeout: Duration,
) -> Vec<H2Result> {
    let script = super::repo_root().join("tests/tools/h2_client.py");
    let input = Value::Array(requests.iter().map(H2Request::to_json).collect()).to_string();
    let py = python();
    let mut child = Command::new(&py)
        .arg(&script)
        .arg(port.to_string())
        .args(["--concurrency", &concurrency.to_string()])
        .args(["--timeout", &format!("{:.1}", timeout.as_secs_f64())])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (set BCL_PYTHON or run scripts/setup.sh, which installs h2 into \
                 .venv): {e}",
                py.display()
            )
        });
    // Write stdin and read stdout/stderr on threads: the pipes must not fill up.
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stderr.read_to_end(&mut out);
        out
    });
    // The client bounds itself; this is the backstop so a test can never hang on it.
    let windows = requests.len().div_ceil(concurrency.max(1)) as u32 + 2;
    let deadline = Instant::now() + timeout * windows + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("h2_client.py ran past its deadline and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writer.join().unwrap();
    let out = reader.join().unwrap();
    let err = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
    assert!(
        status.success(),
        "h2_client.py failed ({status}): {err}\n(is h2 installed for {}? scripts/setup.sh does it)",
        py.display()
    );
    let results: Value = serde_json::from_slice(&out)
        .unwrap_or_else(|e| panic!("h2_client.py printed no JSON ({e}): {err}"));
    let results: Vec<H2Result> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| H2Result {
            outcome: r["outcome"].as_str().unwrap_or("").to_string(),
            status: r["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
            headers: r["headers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p[0].as_str().unwrap_or("").to_string(),
                        p[1].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect(),
            body: unlatin1(r["body"].as_str().unwrap_or("")),
            error: r["error"].as_str().unwrap_or("").to_string(),
            connection: r["connection"].as_u64().unwrap_or(0),
            elapsed_ms: r["elapsed_ms"].as_u64().unwrap_or(0),
        })
        .collect();
    assert_eq!(
        results.len(),
        requests.len(),
        "h2_client.py: one result per request"
    );
    results
}
