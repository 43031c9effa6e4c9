// Key rotation at the IdP: after the IdP starts signing with a new key (published at its
// jwks_uri), the next logout token, signed with that new key, is accepted without restarting
// Envoy. This stack finds the jwks_uri through the IdP's discovery document
// (`"discovery": true`), so that path is covered too. jwks_min_refetch_seconds is 1 here.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Browser } from './lib/http.mjs';
import { endIdpSessionElsewhere, isLoginPage, login } from './lib/flows.mjs';
import { startStack, waitFor, withDiagnostics } from './lib/stack.mjs';

const MIN_REFETCH_SECONDS = 1;
let stack;
let readyAt;
before(async () => {
  stack = await startStack({
    wasm: true, keySource: 'discovery', minRefetchSeconds: MIN_REFETCH_SECONDS, name: 'rotation',
  });
  readyAt = Date.now();
});
after(async () => { await stack?.stop({ keep: stack?.failed }); });

async function me(browser) {
  const res = await browser.request(`${stack.base}/api/me`, { headers: { accept: 'application/json' } });
  assert.equal(res.status, 200, `${browser.name}: /api/me ${res.status} ${res.body}`);
  return JSON.parse(res.body);
}

test('after the IdP rotates its signing key, a logout token signed with the new key is accepted without restarting Envoy', () => withDiagnostics(stack, async () => {
  const erin = new Browser('erin');
  await login(erin, `${stack.base}/`, 'erin');
  const oldKid = (await me(erin)).id_token_header.kid;

  const rotated = await stack.rotateKeys();
  assert.equal(rotated.previous, oldKid);
  assert.notEqual(rotated.kid, oldKid);

  const frank = new Browser('frank');
  await login(frank, `${stack.base}/`, 'frank');
  const frankClaims = await me(frank);
  assert.equal(frankClaims.id_token_header.kid, rotated.kid, 'the IdP signs with the new key');

  // The filter may refetch on an unknown kid at most once per jwks_min_refetch_seconds since its
  // last fetch (made when Envoy started): let that window pass.
  await waitFor('the refetch window to open', () => Date.now() - readyAt > MIN_REFETCH_SECONDS * 1000 + 200, { timeoutMs: 5000 });

  const fetchesBefore = await stack.stat('wasmcustom.bcl.jwks.fetch_ok');
  const eventsBefore = stack.idp.events.length;
  await endIdpSessionElsewhere(stack.issuer, frank.jar);
  const bc = stack.idp.events.slice(eventsBefore).filter((e) => e.event.startsWith('backchannel.'));
  assert.deepEqual(
    bc.map((e) => [e.event, e.sid, e.error]),
    [['backchannel.success', frankClaims.sid, undefined]],
    `the logout token signed with the new key (kid ${rotated.kid}) was accepted: ${JSON.stringify(bc)}`,
  );
  assert.ok((await stack.stat('wasmcustom.bcl.jwks.fetch_ok')) > fetchesBefore, 'the filter refetched the JWKS');
  const jwksFetches = stack.idpEvents('http.request').filter((e) => e.path === '/jwks');
  assert.ok(jwksFetches.length >= 2, `the IdP served its JWKS again: ${JSON.stringify(jwksFetches)}`);

  const refused = await frank.request(`${stack.base}/`);
  assert.equal(refused.status, 302, `Frank's revoked session: ${refused.status}`);
  const landing = await frank.navigate(new URL(refused.headers.location, stack.base).href);
  assert.ok(isLoginPage(landing), `Frank lands on the login form\n${frank.trail()}`);

  // Erin's session (ID token signed with the old key) still works, and her logout (now signed
  // with the new key) is accepted as well.
  const erinPage = await erin.request(`${stack.base}/`);
  assert.equal(erinPage.status, 200);
  const erinEvents = stack.idp.events.length;
  await endIdpSessionElsewhere(stack.issuer, erin.jar);
  assert.deepEqual(
    stack.idp.events.slice(erinEvents).filter((e) => e.event.startsWith('backchannel.')).map((e) => e.event),
    ['backchannel.success'],
  );
  assert.equal((await erin.request(`${stack.base}/`)).status, 302);
}));

// The same rotation with the back-channel route configured the plain way: no
// `backchannel.hold_router` buffer after the filter, and the route to the app's cluster. The
// filter lets the back-channel request's headers go on to the router while it holds the body;
// while it refetches the keys on an unknown kid, the router has already started the upstream
// request, and an upstream that answers without reading the body (the demo app: 404) would
// answer the IdP first. The filter holds such an upstream answer until its own reply replaces
// it; this suite proves the IdP still hears from the filter. (The shipped config also carries
// hold_router, so there the upstream never sees the request at all.)
const plainBackchannelRoute = (yaml) => {
  const out = yaml.replace(
    /( +)- match: \{ path: \/bff\/backchannel \}\n +direct_response:\n +status: 404\n +body: [^\n]*\n/,
    '$1- match: { path: /bff/backchannel }\n$1  route: { cluster: demo_app, timeout: 10s }\n',
  );
  assert.notEqual(out, yaml, 'the back-channel route of envoy-demo.yaml.tmpl changed shape');
  return out;
};

describe('the back-channel route configured the plain way (no hold_router, route to the app)', () => {
  let bare;
  let started;
  before(async () => {
    bare = await startStack({
      wasm: true,
      keySource: 'jwks_uri',
      minRefetchSeconds: MIN_REFETCH_SECONDS,
      holdRouter: false,
      transformConfig: plainBackchannelRoute,
      name: 'nohold',
    });
    started = Date.now();
  });
  after(async () => { await bare?.stop({ keep: bare?.failed }); });

  test('a logout with a known key is answered by the filter (the body arrives in one pass)', () => withDiagnostics(bare, async () => {
    const gus = new Browser('gus');
    await login(gus, `${bare.base}/`, 'gus');
    const eventsBefore = bare.idp.events.length;
    await endIdpSessionElsewhere(bare.issuer, gus.jar);
    const bc = bare.idp.events.slice(eventsBefore).filter((e) => e.event.startsWith('backchannel.'));
    assert.deepEqual(bc.map((e) => [e.event, e.error]), [['backchannel.success', undefined]]);
    assert.equal((await gus.request(`${bare.base}/`)).status, 302);
  }));

  test('after a key rotation, the logout (refetch on the new kid) is answered by the filter, not the upstream', async () => {
    await bare.rotateKeys();
    const henry = new Browser('henry');
    await login(henry, `${bare.base}/`, 'henry');
    await waitFor('the refetch window to open', () => Date.now() - started > MIN_REFETCH_SECONDS * 1000 + 200, { timeoutMs: 5000 });
    const eventsBefore = bare.idp.events.length;
    await endIdpSessionElsewhere(bare.issuer, henry.jar);
    const bc = bare.idp.events.slice(eventsBefore).filter((e) => e.event.startsWith('backchannel.'));
    assert.deepEqual(bc.map((e) => [e.event, e.error]), [['backchannel.success', undefined]]);
  });
});
