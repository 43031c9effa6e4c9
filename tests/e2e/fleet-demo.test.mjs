// `scripts/demo.sh --fleet --check`: the fleet demo as a person would run it, checked end to end:
// three etcd members (mTLS), Envoy A receiving the IdP's back-channel POSTs and Envoy B serving
// the browser, both loaded from etcd (wasmcustom.bcl.fleet.loaded 1); a user logged in at B
// whose IdP session ends (logout token to A) is refused at B, another user is not
// (scripts/demo-fleet-check.mjs). Every port is a free one. Needs etcd (Debian's etcd-server,
// or ETCD_BIN): skipped without it.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

import { REPO, WASM_PATH, envoyBinary } from './lib/stack.mjs';

const etcd = process.env.ETCD_BIN || spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).stdout.trim();
const skip = etcd ? false : 'no etcd (apt-get install etcd-server, or set ETCD_BIN)';

test('scripts/demo.sh --fleet --check: a logout accepted by Envoy A is enforced by Envoy B', { skip, timeout: 240_000 }, async () => {
  const child = spawn('bash', [join(REPO, 'scripts/demo.sh'), '--fleet', '--check'], {
    cwd: REPO,
    env: { ...process.env, ENVOY_BIN: envoyBinary(), BCL_WASM: WASM_PATH, ETCD_BIN: etcd },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const code = await new Promise((resolve) => child.on('exit', (c, signal) => resolve(c ?? signal)));
  assert.equal(code, 0, `scripts/demo.sh --fleet --check exited ${code}:\n${output.slice(-6000)}`);
  for (const step of ['both Envoys loaded the fleet', 'Envoy B received the revocation from etcd',
    'Envoy B refused alice\'s revoked session', 'bob\'s session still works', 'fleet check passed']) {
    assert.ok(output.includes(step), `"${step}" in:\n${output.slice(-6000)}`);
  }
});
