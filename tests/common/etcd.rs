//! A real etcd v3 cluster for the fleet tests: `etcd` (Debian's `etcd-server`, 3.4; `ETCD_BIN`
//! overrides, `scripts/setup.sh` installs it) run as N members on 127.0.0.1, each on free ports
//! with its own data directory and log in one temporary directory, which drop removes
//! (`BCL_KEEP_TEST_DIRS=1` keeps it).
//!
//! - Every member also serves `/health` and the metrics on a plaintext port of its own
//!   (`--listen-metrics-urls`): readiness is polled there, also when the client port is TLS.
//! - Elections are fast (`--heartbeat-interval 50 --election-timeout 500`), so tests that kill
//!   a member (or the leader) wait a second, not ten.
//! - [`EtcdCluster::start_tls`]: the client port requires a client certificate signed by a CA
//!   made for the cluster with the `openssl` command line ([`TlsFiles`]); peers stay plaintext.
//! - The test reads and writes the data directly through etcd's JSON gateway on the client port
//!   (plaintext clusters only): [`EtcdCluster::put`], [`EtcdCluster::range_prefix`]...

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::http::Request;
use super::jws::unique_id;
use super::{poll, tail};

/// How long members get to report healthy (start, restart).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts with fresh ports when a member could not bind one (taken since it was picked).
const START_ATTEMPTS: usize = 5;
/// How long a gateway call retries etcd's transient errors (no leader yet, leader changed).
const GATEWAY_TIMEOUT: Duration = Duration::from_secs(15);

/// The certificates of a TLS cluster, PEM files in the cluster's directory. The server
/// certificate names `IP:127.0.0.1` and `DNS:localhost`; the client certificate is `CN=envoy`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// One member: fixed name, ports and data directory (a restart reuses them all).
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    metrics_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
}

/// A running etcd cluster. Every member is killed on drop.
pub struct EtcdCluster {
    dir: PathBuf,
    token: String,
    members: Vec<Member>,
    tls: Option<TlsFiles>,
}

/// Why members did not come up.
enum Failure {
    /// A member exited because one of its ports was taken: worth a start with new ports.
    PortTaken(String),
    Other(String),
}

impl EtcdCluster {
    /// Starts a plaintext cluster of `members` members and waits until every one is healthy.
    /// Panics with the members' logs when it does not come up within 30 s.
    pub fn start(members: usize) -> EtcdCluster {
        Self::start_inner(members, false)
    }

    /// [`EtcdCluster::start`] with mutual TLS on the client port: a client certificate signed
    /// by the cluster's CA is required ([`EtcdCluster::tls_files`]). Peers and the
    /// health/metrics port stay plaintext.
    pub fn start_tls(members: usize) -> EtcdCluster {
        Self::start_inner(members, true)
    }

    fn start_inner(members: usize, tls: bool) -> EtcdCluster {
        assert!(members > 0, "an etcd cluster needs at least one member");
        let bin = etcd_bin();
        let dir =
            std::env::temp_dir().join(unique_id(&format!("bcl-etcd-{}-", std::process::id())));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = EtcdCluster {
            dir,
            token: String::new(),
            members: Vec::new(),
            tls: None,
        };
        if tls {
            cluster.tls = Some(make_certs(&cluster.dir));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            cluster.token = unique_id("bcl-test-cluster-");
            let ports = free_ports(3 * members);
            cluster.members = (0..members)
                .map(|i| Member {
                    name: format!("m{i}"),
                    client_port: ports[3 * i],
                    peer_port: ports[3 * i + 1],
                    metrics_port: ports[3 * i + 2],
                    data_dir: cluster.dir.join(format!("m{i}.etcd")),
                    log_path: cluster.dir.join(format!("m{i}.log")),
                    child: None,
                })
                .collect();
            let all: Vec<usize> = (0..members).collect();
            let result = all
                .iter()
                .try_for_each(|&i| cluster.spawn(&bin, i, "new"))
                .and_then(|()| cluster.wait_healthy(&all));
            match result {
                Ok(()) => return cluster,
                Err(Failure::PortTaken(why)) if attempt < START_ATTEMPTS => {
                    eprintln!("etcd: {why}; starting again on new ports (attempt {attempt})");
                    cluster.kill_all();
                    for m in &cluster.members {
                        let _ = std::fs::remove_dir_all(&m.data_dir);
                        let _ = std::fs::remove_file(&m.log_path);
                    }
                }
                Err(Failure::PortTaken(why) | Failure::Other(why)) => {
                    panic!(
                        "etcd cluster did not start: {why}\n{}",
                        cluster.logs_tail(30)
                    )
                }
            }
        }
    }

    /// Runs member `i` (its log appended to `m<i>.log`) with `--initial-cluster-state state`.
    fn spawn(&mut self, bin: &Path, i: usize, state: &str) -> Result<(), Failure> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let initial_cluster: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect();
        let m = &self.members[i];
        let client_url = format!("{scheme}://127.0.0.1:{}", m.client_port);
        let peer_url = format!("http://127.0.0.1:{}", m.peer_port);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&m.log_path)
            .map_err(|e| Failure::Other(format!("{}: {e}", m.log_path.display())))?;
        let log_err = log.try_clone().map_err(|e| Failure::Other(e.to_string()))?;
        let mut cmd = Command::new(bin);
        // etcd also reads ETCD_* variables: only the flags below may configure it.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(name);
            }
        }
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &initial_cluster.join(",")])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .arg("--listen-metrics-urls")
            .arg(format!("http://127.0.0.1:{}", m.metrics_port))
            .args(["--logger", "zap", "--log-outputs", "stderr"]);
        if let Some(tls) = &self.tls {
            cmd.arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| Failure::Other(format!("spawn {}: {e}", bin.display())))?;
        self.members[i].child = Some(child);
        Ok(())
    }

    /// Polls `/health` of the members `which` until every one answers 200 `"health":"true"`
    /// (it has a leader and a quorum read went through). A member that exits fails at once.
    fn wait_healthy(&mut self, which: &[usize]) -> Result<(), Failure> {
        let mut failure = None;
        let mut waiting = String::new();
        poll(HEALTH_TIMEOUT, || {
            for &i in which {
                let m = &mut self.members[i];
                let exited = match m.child.as_mut() {
                    Some(c) => c.try_wait().ok().flatten(),
                    None => {
                        failure = Some(Failure::Other(format!("{} is not running", m.name)));
                        return true;
                    }
                };
                if let Some(status) = exited {
                    m.child = None;
                    let log = std::fs::read_to_string(&m.log_path).unwrap_or_default();
                    let why = format!("{} exited ({status})", m.name);
                    failure = Some(if log.contains("address already in use") {
                        Failure::PortTaken(why)
                    } else {
                        Failure::Other(why)
                    });
                    return true;
                }
            }
            let unhealthy: Vec<String> = which
                .iter()
                .filter(|&&i| !self.health(i))
                .map(|&i| self.members[i].name.clone())
                .collect();
            waiting = unhealthy.join(", ");
            unhealthy.is_empty()
        });
        match failure {
            Some(f) => Err(f),
            None if waiting.is_empty() => Ok(()),
            None => Err(Failure::Other(format!(
                "not healthy after {HEALTH_TIMEOUT:?}: {waiting}"
            ))),
        }
    }

    /// Whether member `i` answers `GET /health` (metrics port) with 200 `"health":"true"`.
    pub fn health(&self, i: usize) -> bool {
        Request::get("/health")
            .send(self.members[i].metrics_port)
            .ok()
            .filter(|r| r.status == 200)
            .and_then(|r| r.json())
            .is_some_and(|v| v["health"] == "true")
    }

    /// SIGKILLs member `i` (no clean shutdown) and waits until it exited.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs member `i` again after [`EtcdCluster::kill`] (same name, data, ports) and waits
    /// until it is healthy. It needs a quorum to be healthy: with a majority down, use
    /// [`EtcdCluster::restart_all`]. Panics with the logs when it does not come back.
    pub fn restart(&mut self, i: usize) {
        self.restart_members(&[i]);
    }

    /// Freezes every running member (SIGSTOP): connections stay open, nothing answers, the way a
    /// hung or partitioned etcd looks to a client. [`EtcdCluster::resume_all`] undoes it.
    pub fn pause_all(&mut self) {
        self.signal_all("-STOP");
    }

    /// Lets frozen members run again (SIGCONT).
    pub fn resume_all(&mut self) {
        self.signal_all("-CONT");
    }

    fn signal_all(&mut self, signal: &str) {
        for m in &self.members {
            if let Some(child) = &m.child {
                let _ = std::process::Command::new("kill")
                    .arg(signal)
                    .arg(child.id().to_string())
                    .status();
            }
        }
    }

    /// SIGKILLs every running member.
    pub fn kill_all(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }

    /// Runs every killed member again, all before waiting (a lone member has no quorum), then
    /// waits until every member is healthy. Panics with the logs when they do not come back.
    pub fn restart_all(&mut self) {
        let killed: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].child.is_none())
            .collect();
        self.restart_members(&killed);
        let all: Vec<usize> = (0..self.members.len()).collect();
        if let Err(Failure::PortTaken(why) | Failure::Other(why)) = self.wait_healthy(&all) {
            panic!("etcd cluster not healthy: {why}\n{}", self.logs_tail(30));
        }
    }

    fn restart_members(&mut self, which: &[usize]) {
        let bin = etcd_bin();
        for &i in which {
            assert!(
                self.members[i].child.is_none(),
                "etcd member {i} is running: kill it first"
            );
        }
        // A port taken meanwhile cannot be replaced: the peers know this member by it.
        let result = which
            .iter()
            .try_for_each(|&i| self.spawn(&bin, i, "existing"))
            .and_then(|()| self.wait_healthy(which));
        if let Err(Failure::PortTaken(why) | Failure::Other(why)) = result {
            panic!(
                "etcd members {which:?} did not restart: {why}\n{}",
                self.logs_tail(30)
            );
        }
    }

    /// Whether member `i`'s process is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.members[i]
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// How many members the cluster has (running or not).
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The client ports of the members, in member order (killed ones too).
    pub fn client_ports(&self) -> Vec<u16> {
        self.members.iter().map(|m| m.client_port).collect()
    }

    pub fn client_port(&self, i: usize) -> u16 {
        self.members[i].client_port
    }

    /// The plaintext port of member `i`'s `/health` and `/metrics`.
    pub fn metrics_port(&self, i: usize) -> u16 {
        self.members[i].metrics_port
    }

    /// The client URLs (`http://` or `https://127.0.0.1:<port>`), in member order.
    pub fn client_urls(&self) -> Vec<String> {
        let scheme = if self.is_tls() { "https" } else { "http" };
        self.members
            .iter()
            .map(|m| format!("{scheme}://127.0.0.1:{}", m.client_port))
            .collect()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The certificates of a cluster from [`EtcdCluster::start_tls`].
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The cluster's temporary directory (data directories, logs, certificates).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Member `i`'s log so far (every run of it).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.members[i].log_path).unwrap_or_default()
    }

    /// The last `n` lines of every member's log, for failure messages.
    pub fn logs_tail(&self, n: usize) -> String {
        let mut out = String::new();
        for (i, m) in self.members.iter().enumerate() {
            out.push_str(&format!(
                "---- etcd {} log ({}) ----\n{}\n",
                m.name,
                m.log_path.display(),
                tail(&self.log(i), n)
            ));
        }
        out
    }

    /// What `envoy/test-fleet.yaml.tmpl` needs: `@ETCD_ENDPOINTS@` (the `lb_endpoints` list)
    /// and `@ETCD_TRANSPORT_SOCKET@` (null, or an UpstreamTlsContext with the client
    /// certificate and the CA, the server's SAN to be 127.0.0.1).
    pub fn envoy_placeholders(&self) -> Vec<(&'static str, String)> {
        let all: Vec<usize> = (0..self.member_count()).collect();
        self.envoy_placeholders_for(&all)
    }

    /// [`EtcdCluster::envoy_placeholders`] with only the members `members` as endpoints (an
    /// Envoy that can be cut off from etcd by killing them).
    pub fn envoy_placeholders_for(&self, members: &[usize]) -> Vec<(&'static str, String)> {
        let endpoints: Vec<Value> = members
            .iter()
            .map(|i| self.client_port(*i))
            .map(|port| {
                json!({"endpoint": {"address": {"socket_address":
                    {"address": "127.0.0.1", "port_value": port}}}})
            })
            .collect();
        let socket = match &self.tls {
            None => Value::Null,
            Some(tls) => {
                let path = |p: &Path| json!({"filename": p.display().to_string()});
                json!({
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                        "sni": "localhost",
                        "common_tls_context": {
                            // gRPC (and Go's HTTP/2 server) needs h2 by ALPN.
                            "alpn_protocols": ["h2"],
                            "tls_certificates": [{
                                "certificate_chain": path(&tls.client_cert),
                                "private_key": path(&tls.client_key),
                            }],
                            "validation_context": {
                                "trusted_ca": path(&tls.ca),
                                "match_typed_subject_alt_names": [{
                                    "san_type": "IP_ADDRESS",
                                    "matcher": {"exact": "127.0.0.1"},
                                }],
                            },
                        },
                    },
                })
            }
        };
        vec![
            ("@ETCD_ENDPOINTS@", Value::Array(endpoints).to_string()),
            ("@ETCD_TRANSPORT_SOCKET@", socket.to_string()),
        ]
    }

    // ---- Direct data access (etcd's JSON gateway, plaintext clusters) --------------------

    /// POSTs `body` to the gateway's `path` on a running member, the next one on a connection
    /// error or a transient etcd error (no leader, leader changed, timeout), for up to 15 s.
    /// Another etcd error (e.g. a compacted revision) is returned as `Err(its JSON)` at once.
    fn gateway(&self, path: &str, body: &Value) -> Result<Value, Value> {
        assert!(
            !self.is_tls(),
            "the harness's gateway calls are plaintext: use EtcdCluster::start"
        );
        let mut last = Value::Null;
        let mut result = None;
        poll(GATEWAY_TIMEOUT, || {
            for i in 0..self.members.len() {
                // Skip the killed ones; one that died by itself just refuses the connection.
                if self.members[i].child.is_none() {
                    continue;
                }
                let sent = Request::post(path)
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .send(self.members[i].client_port);
                let r = match sent {
                    Ok(r) => r,
                    Err(e) => {
                        last = json!(format!("m{i}: {e}"));
                        continue;
                    }
                };
                let v = r.json().unwrap_or_else(|| json!(r.summary()));
                if r.status == 200 {
                    result = Some(Ok(v));
                    return true;
                }
                // gRPC codes: 2 unknown, 4 deadline exceeded, 14 unavailable.
                if !matches!(v["code"].as_i64(), Some(2 | 4 | 14)) {
                    result = Some(Err(v));
                    return true;
                }
                last = v;
            }
            false
        });
        result.unwrap_or_else(|| {
            panic!(
                "etcd gateway {path} {body}: no member answered within {GATEWAY_TIMEOUT:?}, \
                 last: {last}\n{}",
                self.logs_tail(15)
            )
        })
    }

    /// Like [`EtcdCluster::gateway`], panicking on an etcd error.
    fn gateway_ok(&self, path: &str, body: &Value) -> Value {
        match self.gateway(path, body) {
            Ok(v) => v,
            Err(e) => panic!("etcd gateway {path} {body}: {e}"),
        }
    }

    /// Whether member `i` has itself applied a compaction up to `revision` (a local,
    /// serializable read of an older revision is refused as compacted). A restarted member
    /// catches up through the raft log; until it has, a watch on it can still start below
    /// the compacted revision.
    pub fn compacted_on(&self, i: usize, revision: i64) -> bool {
        let body = json!({
            "key": b64_encode(b"\0"),
            "range_end": b64_encode(b"\0"),
            "count_only": true,
            "serializable": true,
            "revision": (revision - 1).max(1).to_string(),
        });
        let sent = Request::post("/v3/kv/range")
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send(self.members[i].client_port);
        sent.ok()
            .and_then(|r| r.json())
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .is_some_and(|e| e.contains("compacted"))
    }

    /// Puts `key` = `value`.
    pub fn put(&self, key: &[u8], value: &[u8]) {
        let body = json!({"key": b64_encode(key), "value": b64_encode(value)});
        self.gateway_ok("/v3/kv/put", &body);
    }

    /// The value of `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let v = self.gateway_ok("/v3/kv/range", &json!({"key": b64_encode(key)}));
        v["kvs"]
            .as_array()
            .and_then(|kvs| kvs.first())
            .map(|kv| b64_decode(kv["value"].as_str().unwrap_or("")))
    }

    /// Every key starting with `prefix` and its value, in key order (paged, at one revision).
    pub fn range_prefix(&self, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let end = b64_encode(&prefix_end(prefix));
        let mut key = range_start(prefix);
        let mut revision = 0i64;
        let mut out = Vec::new();
        loop {
            let mut body = json!({"key": b64_encode(&key), "range_end": end, "limit": 1000});
            if revision != 0 {
                body["revision"] = json!(revision.to_string());
            }
            let v = self.gateway_ok("/v3/kv/range", &body);
            revision = header_revision(&v);
            for kv in v["kvs"].as_array().into_iter().flatten() {
                out.push((
                    b64_decode(kv["key"].as_str().unwrap_or("")),
                    b64_decode(kv["value"].as_str().unwrap_or("")),
                ));
            }
            // proto3 JSON leaves out false and empty fields.
            if v["more"] != true {
                return out;
            }
            let (last, _) = out.last().expect("more=true with no key");
            key = last.clone();
            key.push(0);
        }
    }

    /// How many keys start with `prefix` (`count_only`).
    pub fn count_prefix(&self, prefix: &[u8]) -> usize {
        let body = json!({
            "key": b64_encode(&range_start(prefix)),
            "range_end": b64_encode(&prefix_end(prefix)),
            "count_only": true,
        });
        let v = self.gateway_ok("/v3/kv/range", &body);
        // int64 as a JSON string; absent when 0.
        v["count"].as_str().map_or(0, |c| c.parse().unwrap())
    }

    /// The cluster's current revision (the header of a range).
    pub fn revision(&self) -> i64 {
        let v = self.gateway_ok(
            "/v3/kv/range",
            &json!({"key": b64_encode(b"\0"), "count_only": true}),
        );
        header_revision(&v)
    }

    /// Compacts the history up to `revision` and waits until it is physically applied. A
    /// revision already compacted is fine (the history is gone either way); a future one panics.
    pub fn compact(&self, revision: i64) {
        let body = json!({"revision": revision.to_string(), "physical": true});
        if let Err(e) = self.gateway("/v3/kv/compaction", &body) {
            let message = e["message"].as_str().unwrap_or("");
            assert!(
                message.contains("required revision has been compacted"),
                "etcd compaction at {revision}: {e}"
            );
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        self.kill_all();
        let keep = std::env::var_os("BCL_KEEP_TEST_DIRS").is_some_and(|v| v == "1");
        if std::thread::panicking() {
            eprintln!("{}", self.logs_tail(20));
        }
        if keep {
            eprintln!("etcd cluster directory kept: {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The etcd binary: `ETCD_BIN`, else `etcd` on `PATH`.
pub fn etcd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ETCD_BIN") {
        return PathBuf::from(p);
    }
    find_on_path("etcd").unwrap_or_else(|| {
        panic!("no etcd: set ETCD_BIN or run scripts/setup.sh (installs Debian's etcd-server)")
    })
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `n` distinct free ports on 127.0.0.1: all bound at once (so no two alike), then released.
/// Someone may take one before etcd binds it: the start then tries new ones.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)).unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The first key of the range of `prefix`: itself, or `\0` for the empty prefix (etcd
/// refuses an empty key).
fn range_start(prefix: &[u8]) -> Vec<u8> {
    if prefix.is_empty() {
        vec![0]
    } else {
        prefix.to_vec()
    }
}

/// The end of the key range of `prefix` (etcd's `range_end`): `prefix` with its last byte
/// below 0xff incremented and what follows it cut; `\0` (no end) when there is none.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn header_revision(v: &Value) -> i64 {
    v["header"]["revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("no header.revision in {v}"))
}

/// Standard base64 with padding (what etcd's gateway uses for bytes).
pub fn b64_encode(data: &[u8]) -> String {
    super::jws::b64(data)
}

/// Decodes the gateway's standard base64; panics on anything else (a harness bug).
pub fn b64_decode(text: &str) -> Vec<u8> {
    super::jws::b64_decode(text).unwrap_or_else(|| panic!("not base64: {text:?}"))
}

/// Makes a CA, a server certificate (127.0.0.1, localhost) and a client certificate
/// (CN=envoy) in `dir`, EC P-256, valid one day, with the `openssl` command line.
fn make_certs(dir: &Path) -> TlsFiles {
    // The server certificate has clientAuth too: with --client-cert-auth, etcd's own JSON
    // gateway connects to its gRPC server with it.
    let config = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
";
    std::fs::write(dir.join("openssl.cnf"), config).unwrap();
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("openssl: {e} (scripts/setup.sh installs Debian's openssl)")
            });
        assert!(
            out.status.success(),
            "openssl {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let key = |name: &str| {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            name,
        ])
    };
    key("ca.key");
    #[rustfmt::skip]
    openssl(&[
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=bcl-test-etcd-ca", "-days", "1",
        "-config", "openssl.cnf", "-extensions", "ca", "-out", "ca.pem",
    ]);
    for (name, cn, serial) in [("server", "etcd", "2"), ("client", "envoy", "3")] {
        let (key_file, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        key(&key_file);
        #[rustfmt::skip]
        openssl(&[
            "req", "-new", "-key", &key_file, "-subj", &format!("/CN={cn}"),
            "-config", "openssl.cnf", "-out", &csr,
        ]);
        #[rustfmt::skip]
        openssl(&[
            "x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key",
            "-set_serial", serial, "-days", "1", "-sha256",
            "-extfile", "openssl.cnf", "-extensions", name, "-out", &pem,
        ]);
    }
    TlsFiles {
        ca: dir.join("ca.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client.key"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    }
}
