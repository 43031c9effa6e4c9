// docker-compose.yml: `docker-compose config` passes, and the demo profile's Envoy environment
// renders envoy/envoy-demo.yaml.tmpl (the template the native demo and these tests use) to a
// configuration that Envoy 1.40 validates. No Docker engine is needed (none runs here).
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
    // the files the container mounts under /srv live in the repository here
    const local = {
      ...env,
      WASM_PATH: env.WASM_PATH.replace(/^\/srv\/wasm\//, `${join(WASM_PATH, '..')}/`),
      BCL_JWKS_PUBLIC_FILE: env.BCL_JWKS_PUBLIC_FILE.replace(/^\/srv\//, `${REPO}/`),
    };
    for (const mode of ['jwks_uri', 'discovery', 'inline']) {
      const rendered = spawnSync('sh', [join(REPO, 'envoy/render.sh')], {
        encoding: 'utf8', env: { PATH: process.env.PATH, ...local, BCL_KEY_SOURCE_MODE: mode },
      });
      assert.equal(rendered.status, 0, rendered.stderr);
      const file = join(dir, `envoy-${mode}.yaml`);
      writeFileSync(file, rendered.stdout);
      const validate = spawnSync(envoyBinary(), ['--mode', 'validate', '-c', file, '--log-level', 'warn'], { encoding: 'utf8' });
      assert.equal(validate.status, 0, `${mode}: ${validate.stdout}${validate.stderr}`);
      assert.match(validate.stdout + validate.stderr, /OK/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
