// The filter with the IdP's public keys inline in its configuration (BCL_KEY_SOURCE_MODE=inline:
// idp/dev-keys/jwks.public.json), no fetching: the one-line alternative to jwks_uri/discovery.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Browser } from './lib/http.mjs';
import { endIdpSessionElsewhere, isLoginPage, login } from './lib/flows.mjs';
import { startStack, withDiagnostics } from './lib/stack.mjs';

let stack;
before(async () => { stack = await startStack({ wasm: true, keySource: 'inline', name: 'inline' }); });
after(async () => { await stack?.stop({ keep: stack?.failed }); });

test('inline keys: the IdP\'s logout token is accepted and the session is sent back to login', () => withDiagnostics(stack, async () => {
  const ivy = new Browser('ivy');
  await login(ivy, `${stack.base}/`, 'ivy');
  const eventsBefore = stack.idp.events.length;
  await endIdpSessionElsewhere(stack.issuer, ivy.jar);
  const bc = stack.idp.events.slice(eventsBefore).filter((e) => e.event.startsWith('backchannel.'));
  assert.deepEqual(bc.map((e) => e.event), ['backchannel.success'], JSON.stringify(bc));
  assert.equal(stack.idpEvents('http.request').filter((e) => e.path === '/jwks').length, 0, 'nothing fetched the JWKS');
  const refused = await ivy.request(`${stack.base}/`);
  assert.equal(refused.status, 302);
  assert.ok(isLoginPage(await ivy.navigate(new URL(refused.headers.location, stack.base).href)));
}));
