// The self-check of `scripts/demo.sh --fleet --check`, run once the fleet demo is up: the demo's
// steps as a person clicks them, with the e2e tests' cookie-jar client (tests/e2e/lib, node
// built-ins only), on the running fleet:
//   1. alice and bob log in through Envoy B (the browser's Envoy);
//   2. alice's IdP session is ended from another tab: the IdP POSTs the logout token to
//      Envoy A, which accepts it (wasmcustom.bcl.logout.accepted on A);
//   3. Envoy B receives the revocation from etcd (wasmcustom.bcl.fleet.applied on B) and
//      refuses alice's session: 302 to the same URL, Envoy's cookies cleared; bob still gets in.
//
//   node scripts/demo-fleet-check.mjs --browser-url URL --issuer URL --admin-a URL --admin-b URL
// Exits 0 when every step held, 1 with what went wrong.
import { parseArgs } from 'node:util';

import { Browser } from '../tests/e2e/lib/http.mjs';
import { endIdpSessionElsewhere, login } from '../tests/e2e/lib/flows.mjs';

const { values: opts } = parseArgs({
  options: {
    'browser-url': { type: 'string' },
    issuer: { type: 'string' },
    'admin-a': { type: 'string' },
    'admin-b': { type: 'string' },
    'timeout-ms': { type: 'string', default: '15000' },
  },
  strict: true,
});
for (const name of ['browser-url', 'issuer', 'admin-a', 'admin-b']) {
  if (!opts[name]) fail(`--${name} is required`);
}
const base = opts['browser-url'].replace(/\/+$/, '');
const timeoutMs = Number(opts['timeout-ms']);

function fail(message) {
  process.stderr.write(`fleet check: FAILED: ${message}\n`);
  process.exit(1);
}
function ok(message) {
  process.stderr.write(`fleet check: ok: ${message}\n`);
}

async function stat(admin, name) {
  const res = await fetch(`${admin}/stats?filter=bcl`);
  const line = (await res.text()).split('\n').find((l) => l.startsWith(`${name}: `));
  return line ? Number(line.slice(name.length + 2)) : 0;
}

async function waitFor(what, check) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function me(browser) {
  const res = await browser.request(`${base}/api/me`, { headers: { accept: 'application/json' } });
  if (res.status !== 200) fail(`${browser.name}: GET /api/me at Envoy B: ${res.status} ${res.body.slice(0, 300)}`);
  return JSON.parse(res.body);
}

try {
  const alice = new Browser('alice');
  const bob = new Browser('bob');
  await login(alice, `${base}/`, 'alice');
  await login(bob, `${base}/`, 'bob');
  const aliceClaims = await me(alice);
  await me(bob);
  ok(`alice and bob logged in through Envoy B (alice's sid ${aliceClaims.sid})`);

  const acceptedA = await stat(opts['admin-a'], 'wasmcustom.bcl.logout.accepted');
  const acceptedB = await stat(opts['admin-b'], 'wasmcustom.bcl.logout.accepted');
  const appliedB = await stat(opts['admin-b'], 'wasmcustom.bcl.fleet.applied');

  await endIdpSessionElsewhere(opts.issuer, alice.jar);
  await waitFor('Envoy A to accept the logout token (wasmcustom.bcl.logout.accepted)',
    async () => (await stat(opts['admin-a'], 'wasmcustom.bcl.logout.accepted')) === acceptedA + 1);
  ok('the IdP sent the logout token to Envoy A, which accepted it');
  if ((await stat(opts['admin-b'], 'wasmcustom.bcl.logout.accepted')) !== acceptedB) {
    fail('Envoy B accepted a logout token itself: the IdP\'s back-channel URI should be Envoy A\'s');
  }

  await waitFor('Envoy B to apply the revocation from etcd (wasmcustom.bcl.fleet.applied)',
    async () => (await stat(opts['admin-b'], 'wasmcustom.bcl.fleet.applied')) > appliedB);
  ok('Envoy B received the revocation from etcd');

  const refused = await alice.request(`${base}/?after=logout`);
  const cleared = refused.setCookies.filter((c) => /max-age=0/i.test(c)).map((c) => c.split('=')[0]);
  if (refused.status !== 302 || !cleared.includes('IdToken')) {
    fail(`alice's revoked session at Envoy B: expected 302 clearing IdToken, got ${refused.status} `
      + `(Set-Cookie: ${refused.setCookies.join(' | ')}) ${refused.body.slice(0, 300)}`);
  }
  ok(`Envoy B refused alice's revoked session (302, cleared ${cleared.join(', ')})`);
  await me(bob);
  ok('bob\'s session still works at Envoy B');
} catch (error) {
  fail(error.stack ?? String(error));
}
