// The filter against a real IdP: users log in through Envoy's oauth2 filter; the IdP ends one
// session from elsewhere; its back-channel logout token reaches this filter (keys fetched from
// the IdP's jwks_uri through the `idp` cluster) and that user's next request is refused and sent
// back to login, while another user's session keeps working.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Browser } from './lib/http.mjs';
import { endIdpSessionElsewhere, isLoginPage, login } from './lib/flows.mjs';
import { startStack, waitFor, withDiagnostics } from './lib/stack.mjs';

let stack;
before(async () => { stack = await startStack({ wasm: true, keySource: process.env.E2E_KEY_SOURCE ?? 'jwks_uri', name: 'bcl' }); });
after(async () => { await stack?.stop({ keep: stack?.failed }); });

async function me(browser) {
  const res = await browser.request(`${stack.base}/api/me`, { headers: { accept: 'application/json' } });
  assert.equal(res.status, 200, `${browser.name}: /api/me ${res.status} ${res.body}`);
  return JSON.parse(res.body);
}

function clearedCookies(res) {
  const cleared = new Set();
  for (const header of res.setCookies) {
    const m = /^([^=]+)=([^;]*);(.*)$/.exec(header);
    if (m && /max-age=0/i.test(m[3])) cleared.add(m[1]);
  }
  return cleared;
}

test('a session ended at the IdP from elsewhere is refused on its next request; another user keeps working', () => withDiagnostics(stack, async () => {
  const alice = new Browser('alice');
  const bob = new Browser('bob');
  await login(alice, `${stack.base}/`, 'alice');
  await login(bob, `${stack.base}/`, 'bob');
  const aliceClaims = await me(alice);
  const bobClaims = await me(bob);
  assert.equal(aliceClaims.sub, 'alice');
  assert.equal(bobClaims.sub, 'bob');
  assert.notEqual(aliceClaims.sid, bobClaims.sid);

  const acceptedBefore = await stack.stat('wasmcustom.bcl.logout.accepted');
  const eventsBefore = stack.idp.events.length;

  // Alice's IdP session is ended by another client (a second "tab" holding only the IdP's
  // session cookie, logging out as the other application); Alice's Envoy cookies stay as they are.
  await endIdpSessionElsewhere(stack.issuer, alice.jar);

  const newEvents = stack.idp.events.slice(eventsBefore);
  const bcErrors = newEvents.filter((e) => e.event === 'backchannel.error');
  assert.deepEqual(bcErrors, [], 'the IdP got 200 from Envoy for its back-channel POST');
  const bcOk = newEvents.filter((e) => e.event === 'backchannel.success');
  assert.equal(bcOk.length, 1, JSON.stringify(newEvents));
  assert.equal(bcOk[0].client_id, 'demo-app');
  assert.equal(bcOk[0].sub, 'alice');
  assert.equal(bcOk[0].sid, aliceClaims.sid, 'the logout token named Alice\'s session');
  await waitFor('wasmcustom.bcl.logout.accepted to increase', async () => (await stack.stat('wasmcustom.bcl.logout.accepted')) === acceptedBefore + 1);
  assert.equal(stack.appRequests((r) => r.path === '/bff/backchannel').length, 0, 'the app never saw the IdP\'s POST');

  // Alice's next request with her old cookies: not forwarded upstream; a 302 back to the same
  // URL clearing Envoy's cookies.
  const aliceRequestsBefore = stack.appRequests((r) => r.sub === 'alice').length;
  const revokedBefore = await stack.stat('wasmcustom.bcl.session.revoked');
  const oldAliceJar = alice.jar.copy();
  const refused = await alice.request(`${stack.base}/?tab=1`);
  assert.equal(refused.status, 302, `revoked session: ${refused.status} ${refused.body}`);
  assert.equal(refused.headers.location, '/?tab=1', 'redirected to the same URL');
  const cleared = clearedCookies(refused);
  for (const name of ['BearerToken', 'IdToken', 'OauthHMAC', 'OauthExpires']) {
    assert.ok(cleared.has(name), `${name} cleared (Set-Cookie: ${refused.setCookies.join(' | ')})`);
  }
  assert.match(String(refused.headers['cache-control']), /no-store/);
  assert.equal(stack.appRequests((r) => r.sub === 'alice').length, aliceRequestsBefore, 'the app never saw Alice\'s request');
  await waitFor('wasmcustom.bcl.session.revoked to increase', async () => (await stack.stat('wasmcustom.bcl.session.revoked')) > revokedBefore);

  // Following the redirect, the browser lands on the IdP's login form (the IdP session is gone).
  const landing = await alice.navigate(new URL(refused.headers.location, stack.base).href);
  assert.ok(isLoginPage(landing), `Alice lands on the login form, got ${landing.status} at ${landing.url}\n${alice.trail()}`);

  // An API call with the old cookies gets 401 JSON instead of a redirect.
  const oldAlice = new Browser('alice-old-cookies', oldAliceJar);
  const api = await oldAlice.request(`${stack.base}/api/me`, { headers: { accept: 'application/json' } });
  assert.equal(api.status, 401, api.body);
  assert.equal(JSON.parse(api.body).error, 'session_revoked', api.body);
  assert.match(String(api.headers['content-type']), /application\/json/);
  assert.equal(stack.appRequests((r) => r.sub === 'alice').length, aliceRequestsBefore);

  // Bob was not touched.
  const bobAgain = await bob.request(`${stack.base}/`);
  assert.equal(bobAgain.status, 200, `Bob's session still works: ${bobAgain.status}`);
  assert.match(bobAgain.body, /id="who">bob</);
  assert.equal((await me(bob)).sid, bobClaims.sid);

  // Alice can log in again (new IdP session, new sid) and is let through.
  const again = await login(new Browser('alice-again'), `${stack.base}/`, 'alice');
  assert.match(again.body, /id="who">alice</);
}));

test('RP-initiated logout through Envoy\'s signout_path also sends a logout token that the filter accepts', () => withDiagnostics(stack, async () => {
  const carol = new Browser('carol');
  await login(carol, `${stack.base}/`, 'carol');
  const carolClaims = await me(carol);
  const oldCarol = new Browser('carol-old-cookies', carol.jar.copy());
  const acceptedBefore = await stack.stat('wasmcustom.bcl.logout.accepted');
  const eventsBefore = stack.idp.events.length;

  // /signout clears Envoy's cookies and sends the browser to the IdP's end-session page
  // with id_token_hint; the user confirms.
  const confirm = await carol.navigate(`${stack.base}/signout`);
  assert.equal(confirm.status, 200, `${confirm.status} at ${confirm.url}\n${carol.trail()}`);
  assert.match(confirm.url, /\/session\/end\?/);
  const { parseForm } = await import('./lib/http.mjs');
  const form = parseForm(confirm.body, confirm.url, 'op.logoutForm');
  await carol.navigate(form.action, { method: 'POST', form: { ...form.fields, logout: 'yes' } });

  const bc = stack.idp.events.slice(eventsBefore).filter((e) => e.event.startsWith('backchannel.'));
  assert.deepEqual(bc.map((e) => [e.event, e.sid]), [['backchannel.success', carolClaims.sid]], JSON.stringify(bc));
  await waitFor('accepted counter', async () => (await stack.stat('wasmcustom.bcl.logout.accepted')) === acceptedBefore + 1);

  // Someone who kept a copy of Carol's cookies cannot use them any more.
  const replay = await oldCarol.request(`${stack.base}/`);
  assert.equal(replay.status, 302);
  assert.equal(replay.headers.location, '/');
}));

test('a forged logout token (not signed by the IdP) is refused with 400 and nothing is revoked', () => withDiagnostics(stack, async () => {
  const dave = new Browser('dave');
  await login(dave, `${stack.base}/`, 'dave');
  const daveClaims = await me(dave);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const kid = daveClaims.id_token_header.kid;
  const forged = `${b64({ alg: 'RS256', kid, typ: 'logout+jwt' })}.${b64({
    iss: stack.issuer, aud: 'demo-app', iat: now, exp: now + 120, jti: `forged-${now}`, sub: 'dave', sid: daveClaims.sid,
    events: { 'http://schemas.openid.net/event/backchannel-logout': {} },
  })}.${Buffer.from('not a signature').toString('base64url')}`;
  const { rawRequest } = await import('./lib/http.mjs');
  const res = await rawRequest(`${stack.base}/bff/backchannel`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `logout_token=${forged}`,
  });
  assert.equal(res.status, 400, res.body);
  assert.match(JSON.parse(res.body).error_description, /^signature:/);
  const still = await dave.request(`${stack.base}/`);
  assert.equal(still.status, 200, 'Dave still logged in');
}));
