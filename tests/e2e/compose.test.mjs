// docker-compose.yml: `docker-compose config` passes, and the demo profile's Envoy environment
// renders envoy/envoy-demo.yaml.tmpl (the template the native demo and these tests use) to a
// configuration that Envoy 1.40 validates; the same for the "fleet" profile (three etcd members,
// the IdP posting to Envoy A, browsers on Envoy B; both Envoys' configs with the fleet block,
// the etcd cluster over mTLS and the singleton). No Docker engine is needed (none runs here).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { REPO, WASM_PATH, envoyBinary } from './lib/stack.mjs';

const compose = spawnSync('docker-compose', ['version'], { encoding: 'utf8' });
const skip = compose.error ? 'docker-compose is not installed (apt-get install docker-compose)' : false;

function run(args) {
  const out = spawnSync('docker-compose', args, { cwd: REPO, encoding: 'utf8' });
  assert.equal(out.status, 0, `docker-compose ${args.join(' ')}: ${out.stderr}`);
  return out.stdout;
}

/** The `environment:` map of one service in `docker-compose config` output. */
function serviceEnvironment(config, service) {
  const lines = config.split('\n');
  const start = lines.indexOf(`  ${service}:`);
  assert.ok(start >= 0, `service ${service} in docker-compose config`);
  const env = {};
  let inEnv = false;
  for (const line of lines.slice(start + 1)) {
    if (/^ {2}\S/.test(line) || /^\S/.test(line)) break; // next service / section
    if (/^ {4}environment:\s*$/.test(line)) { inEnv = true; continue; }
    if (inEnv) {
      const m = /^ {6}([A-Za-z_][A-Za-z0-9_]*): (.*)$/.exec(line);
      if (!m) { if (/^ {4}\S/.test(line)) inEnv = false; continue; }
      env[m[1]] = m[2].replace(/^'(.*)'$/, '$1').replace(/^"(.*)"$/, '$1');
    }
  }
  return env;
}

test('docker-compose config passes (default services and the demo profile)', { skip }, () => {
  run(['config', '-q']);
  const config = run(['config']);
  for (const file of ['envoy/render.sh', 'idp/server.mjs', 'demo-app/server.mjs']) {
    assert.ok(config.includes(file), `the demo profile runs ${file}`);
  }
});

test('the demo profile\'s Envoy environment renders the shared template to a valid Envoy config', { skip }, () => {
  const env = serviceEnvironment(run(['config']), 'demo-envoy');
  assert.equal(env.IDP_HOST, 'demo-idp');
  assert.equal(env.APP_HOST, 'demo-app');
  const dir = mkdtempSync(join(tmpdir(), 'bcl-e2e-compose-'));
  try {
    for (const mode of ['jwks_uri', 'discovery', 'inline']) {
      const yaml = renderAndValidate({ ...env, BCL_KEY_SOURCE_MODE: mode }, dir, mode);
      assert.doesNotMatch(yaml, /^\s*root_id: backchannel_logout_fleet$/m, 'no fleet singleton outside the fleet profile');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Renders the template with a container's environment (the files the container mounts under
 * /srv and /certs mapped to local ones) and has Envoy validate the result; returns the YAML. */
function renderAndValidate(env, dir, name, certDir) {
  const local = {
    ...env,
    WASM_PATH: env.WASM_PATH.replace(/^\/srv\/wasm\//, `${join(WASM_PATH, '..')}/`),
    BCL_JWKS_PUBLIC_FILE: env.BCL_JWKS_PUBLIC_FILE.replace(/^\/srv\//, `${REPO}/`),
  };
  for (const key of ['ETCD_CA_FILE', 'ETCD_CLIENT_CERT_FILE', 'ETCD_CLIENT_KEY_FILE']) {
    if (local[key]) local[key] = local[key].replace(/^\/certs\//, `${certDir}/`);
  }
  const rendered = spawnSync('sh', [join(REPO, 'envoy/render.sh')], {
    encoding: 'utf8', env: { PATH: process.env.PATH, ...local },
  });
  assert.equal(rendered.status, 0, rendered.stderr);
  const file = join(dir, `envoy-${name}.yaml`);
  writeFileSync(file, rendered.stdout);
  const validate = spawnSync(envoyBinary(), ['--mode', 'validate', '-c', file, '--log-level', 'warn'], { encoding: 'utf8' });
  assert.equal(validate.status, 0, `${name}: ${validate.stdout}${validate.stderr}`);
  assert.match(validate.stdout + validate.stderr, /OK/);
  return rendered.stdout;
}

const FLEET_SERVICES = ['etcd-1', 'etcd-2', 'etcd-3', 'fleet-idp', 'fleet-envoy-a', 'fleet-envoy-b'];

test('the fleet profile: three etcd members, the IdP posting to Envoy A, browsers on Envoy B', { skip }, () => {
  run(['--profile', 'fleet', 'config', '-q']);
  const services = run(['--profile', 'fleet', 'config', '--services']).trim().split('\n');
  for (const service of FLEET_SERVICES) assert.ok(services.includes(service), `service ${service} in the fleet profile`);
  const config = run(['--profile', 'fleet', 'config']);
  const idp = serviceEnvironment(config, 'fleet-idp');
  const a = serviceEnvironment(config, 'fleet-envoy-a');
  const b = serviceEnvironment(config, 'fleet-envoy-b');
  // the IdP's back-channel URI is Envoy A's listener; its browser-facing app URL is Envoy B's
  assert.equal(idp.BACKCHANNEL_URL, `http://fleet-envoy-a:${a.LISTEN_PORT}/bff/backchannel`);
  assert.ok(config.includes(`127.0.0.1:${new URL(idp.DEMO_APP_URL).port}:${b.LISTEN_PORT}`), 'B publishes the app URL');
  for (const env of [a, b]) {
    assert.equal(env.WITH_FLEET, '1');
    assert.equal(env.ETCD_MEMBERS, 'etcd-1:2379,etcd-2:2379,etcd-3:2379');
    assert.equal(env.IDP_ISSUER, idp.IDP_ISSUER);
  }
  assert.equal(a.HMAC_SECRET, b.HMAC_SECRET, 'one HMAC secret: the oauth2 cookies pass on both Envoys');
  for (const member of ['etcd-1', 'etcd-2', 'etcd-3']) {
    const env = serviceEnvironment(config, member);
    assert.equal(env.ETCD_NAME, member);
    assert.equal(env.ETCD_CLIENT_CERT_AUTH, 'true', `${member} requires client certificates`);
    assert.match(env.ETCD_LISTEN_CLIENT_URLS, /^https:/);
  }
});

test('the fleet Envoys\' environment renders a valid Envoy config: fleet block, etcd cluster (mTLS), singleton', { skip }, () => {
  const config = run(['--profile', 'fleet', 'config']);
  const dir = mkdtempSync(join(tmpdir(), 'bcl-e2e-compose-fleet-'));
  try {
    const certs = join(dir, 'certs');
    const made = spawnSync('bash', [join(REPO, 'scripts/fleet-certs.sh'), certs], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    for (const service of ['fleet-envoy-a', 'fleet-envoy-b']) {
      const yaml = renderAndValidate(serviceEnvironment(config, service), dir, service, certs);
      assert.match(yaml, /"fleet": \{\s*"etcd_cluster": "etcd"/);
      assert.match(yaml, /root_id: backchannel_logout_fleet/);
      assert.match(yaml, /vm_config: \*bcl_vm_config/);
      assert.match(yaml, /value: \*bcl_plugin_config/);
      assert.match(yaml, /UpstreamTlsContext/);
      assert.match(yaml, /address: etcd-3, port_value: 2379/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
