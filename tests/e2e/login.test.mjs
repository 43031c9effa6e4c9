// Baseline: the login flow through Envoy's oauth2 filter against the demo IdP, WITHOUT this
// project's filter. When this passes and the filter tests fail, the filter is at fault.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Browser } from './lib/http.mjs';
import { endIdpSessionElsewhere, login } from './lib/flows.mjs';
import { startStack, withDiagnostics } from './lib/stack.mjs';

let stack;
before(async () => { stack = await startStack({ wasm: false, name: 'nowasm' }); });
after(async () => { await stack?.stop({ keep: stack?.failed }); });

test('without the filter: a user logs in through Envoy and the app sees the ID token', () => withDiagnostics(stack, async () => {
  const alice = new Browser('alice');
  const page = await login(alice, `${stack.base}/`, 'alice');
  assert.match(page.body, /id="who">alice</);
  for (const name of ['BearerToken', 'IdToken', 'OauthHMAC', 'OauthExpires']) {
    assert.ok(alice.jar.get(name), `Envoy set the ${name} cookie (jar has ${alice.jar.names()})`);
  }
  const me = await alice.request(`${stack.base}/api/me`, { headers: { accept: 'application/json' } });
  assert.equal(me.status, 200, me.body);
  const claims = JSON.parse(me.body);
  assert.equal(claims.sub, 'alice');
  assert.equal(claims.iss, stack.issuer);
  assert.equal(claims.aud, 'demo-app');
  assert.ok(claims.sid, 'the ID token carries sid (backchannel_logout_session_required)');
  assert.equal(claims.bearer, true, 'forward_bearer_token');
  assert.equal(claims.id_token_header.alg, 'RS256');
  assert.ok(claims.id_token_header.kid, 'ID token header has a kid');
}));

test('without the filter: the IdP\'s back-channel POST passes Envoy\'s login (no redirect) and gets the route\'s 404', () => withDiagnostics(stack, async () => {
  const bob = new Browser('bob');
  await login(bob, `${stack.base}/`, 'bob');
  const before = stack.idp.events.length;
  await endIdpSessionElsewhere(stack.issuer, bob.jar);
  const errorsAfter = stack.idp.events.slice(before).filter((e) => e.event === 'backchannel.error');
  assert.equal(errorsAfter.length, 1, JSON.stringify(stack.idp.events.slice(before)));
  // pass_through_matcher let the POST past the oauth2 filter (else: 302 to the login page), and
  // the back-channel route answers 404 itself: the app never gets the IdP's POST.
  assert.match(errorsAfter[0].error, /got: 404/);
  assert.equal(stack.appRequests((r) => r.path === '/bff/backchannel').length, 0);
}));
