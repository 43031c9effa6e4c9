// session.bearer_tokens end to end, with a real JWT access token from node-oidc-provider.
//
// The IdP issues the demo client a JWT access token (resource indicator <app>/api) that carries
// the IdP session id `sid`. An API client holding only that token calls through Envoy:
// jwt_authn checks its signature, issuer and audience (route "api-bearer" of
// envoy/envoy-demo.yaml.tmpl), the oauth2 filter lets it pass, and this filter refuses it with
// 401 invalid_token once the IdP has ended its session by a back-channel logout. Another user's
// token keeps working, and a token with a bad signature never gets past jwt_authn.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Browser, rawRequest } from './lib/http.mjs';
import { endIdpSessionElsewhere, login } from './lib/flows.mjs';
import {
  decodeJwt, startStack, waitFor, withDiagnostics,
} from './lib/stack.mjs';

let stack;
before(async () => { stack = await startStack({ wasm: true, name: 'bearer' }); });
after(async () => { await stack?.stop({ keep: stack?.failed }); });

const JWT_AUTHN_ALLOWED = 'http.demo.jwt_authn.allowed';
const JWT_AUTHN_DENIED = 'http.demo.jwt_authn.denied';

/** The logged-in browser's session as the app sees it (IdToken cookie). */
async function me(browser) {
  const res = await browser.request(`${stack.base}/api/me`, { headers: { accept: 'application/json' } });
  assert.equal(res.status, 200, `${browser.name}: /api/me ${res.status} ${res.body}`);
  const body = JSON.parse(res.body);
  assert.equal(body.via, 'id_token_cookie');
  return body;
}

/** The access token that Envoy's oauth2 filter forwards for this browser (Authorization: Bearer). */
async function accessToken(browser) {
  const res = await browser.request(`${stack.base}/api/token`, { headers: { accept: 'application/json' } });
  assert.equal(res.status, 200, `${browser.name}: /api/token ${res.status} ${res.body}`);
  return JSON.parse(res.body).access_token;
}

/** An API client's call: only `Authorization: Bearer <token>`, no cookies. */
function bearerCall(token, { path = '/api/me', headers = {} } = {}) {
  return rawRequest(`${stack.base}${path}`, {
    headers: { accept: 'application/json', authorization: `Bearer ${token}`, ...headers },
  });
}

/** The same token with one bit of its signature flipped. */
function withBadSignature(token) {
  const [h, p, s] = token.split('.');
  const sig = Buffer.from(s, 'base64url');
  sig[sig.length >> 1] ^= 0x01;
  return `${h}.${p}.${sig.toString('base64url')}`;
}

function assertRefusedByFilter(res, what) {
  assert.equal(res.status, 401, `${what}: ${res.status} ${res.body}`);
  assert.match(String(res.headers['www-authenticate']), /^Bearer error="invalid_token"/, what);
  assert.match(String(res.headers['content-type']), /application\/json/, what);
  assert.equal(JSON.parse(res.body).error, 'invalid_token', `${what}: ${res.body}`);
  assert.deepEqual(res.setCookies, [], `${what}: no cookie is cleared for a bearer token`);
}

function assertRefusedByJwtAuthn(res, what, { missing = false } = {}) {
  assert.equal(res.status, 401, `${what}: ${res.status} ${res.body}`);
  // jwt_authn's own answer, not this filter's JSON
  assert.match(res.body, missing ? /^Jwt is missing/ : /^Jwt /, `${what}: ${res.body}`);
  const challenge = String(res.headers['www-authenticate']);
  assert.match(challenge, /^Bearer realm=/, what);
  if (!missing) assert.match(challenge, /error="invalid_token"/, what);
}

let alice;
let bob;
let aliceSession;
let aliceToken;
let bobToken;

test('the IdP issues a JWT access token with iss, sub and the session\'s sid; with it alone an API client reaches the app', () => withDiagnostics(stack, async () => {
  alice = new Browser('alice');
  bob = new Browser('bob');
  await login(alice, `${stack.base}/`, 'alice');
  await login(bob, `${stack.base}/`, 'bob');
  aliceSession = await me(alice);
  const bobSession = await me(bob);
  assert.equal(aliceSession.aud, 'demo-app', 'the ID token is still issued for the client');
  assert.ok(aliceSession.sid && bobSession.sid && aliceSession.sid !== bobSession.sid);

  aliceToken = await accessToken(alice);
  bobToken = await accessToken(bob);
  const { header, payload } = decodeJwt(aliceToken);
  assert.equal(aliceToken.split('.').length, 3, 'a compact JWS');
  assert.equal(header.typ, 'at+jwt', JSON.stringify(header));
  assert.equal(header.alg, 'RS256');
  assert.equal(header.kid, aliceSession.id_token_header.kid, 'signed with the IdP\'s key');
  assert.equal(payload.iss, stack.issuer);
  assert.equal(payload.sub, 'alice');
  assert.equal(payload.sid, aliceSession.sid, 'the access token carries the ID token\'s sid');
  assert.equal(payload.aud, stack.apiAudience);
  assert.equal(payload.client_id, 'demo-app');
  assert.equal(payload.scope, 'api');
  assert.ok(Number.isInteger(payload.iat) && payload.exp > Date.now() / 1000, JSON.stringify(payload));
  assert.equal(decodeJwt(bobToken).payload.sid, bobSession.sid);

  const allowedBefore = await stack.stat(JWT_AUTHN_ALLOWED);
  const appBefore = stack.appRequests().length;
  const res = await bearerCall(aliceToken);
  assert.equal(res.status, 200, `bearer-only call: ${res.status} ${res.body}`);
  const body = JSON.parse(res.body);
  assert.equal(body.via, 'access_token', 'no IdToken cookie reached the app: it read the access token');
  assert.equal(body.sub, 'alice');
  assert.equal(body.sid, aliceSession.sid);
  assert.equal(stack.appRequests().length, appBefore + 1);
  await waitFor('jwt_authn to count the verified token', async () => (await stack.stat(JWT_AUTHN_ALLOWED)) > allowedBefore);
}));

test('after a back-channel logout the session\'s access token gets 401 invalid_token; another user\'s token still works', () => withDiagnostics(stack, async () => {
  assert.ok(aliceToken && bobToken, 'the first test logged alice and bob in');
  const acceptedBefore = await stack.stat('wasmcustom.bcl.logout.accepted');
  const eventsBefore = stack.idp.events.length;

  await endIdpSessionElsewhere(stack.issuer, alice.jar);

  const bc = stack.idp.events.slice(eventsBefore).filter((e) => e.event.startsWith('backchannel.'));
  assert.deepEqual(bc.map((e) => [e.event, e.client_id, e.sid]), [['backchannel.success', 'demo-app', aliceSession.sid]], JSON.stringify(bc));
  await waitFor('wasmcustom.bcl.logout.accepted to increase', async () => (await stack.stat('wasmcustom.bcl.logout.accepted')) === acceptedBefore + 1);

  const revokedBefore = await stack.stat('wasmcustom.bcl.bearer.revoked');
  const allowedBefore = await stack.stat(JWT_AUTHN_ALLOWED);
  const appBefore = stack.appRequests().length;
  const refused = await bearerCall(aliceToken);
  assertRefusedByFilter(refused, 'alice\'s access token after the logout');
  assert.match(String(refused.headers['cache-control']), /no-store/);
  // jwt_authn accepted it (the signature is fine): the refusal is this filter's
  await waitFor('jwt_authn to count the verified token', async () => (await stack.stat(JWT_AUTHN_ALLOWED)) > allowedBefore);
  await waitFor('wasmcustom.bcl.bearer.revoked to increase', async () => (await stack.stat('wasmcustom.bcl.bearer.revoked')) > revokedBefore);
  // any path, not only the API's
  assertRefusedByFilter(await bearerCall(aliceToken, { path: '/', headers: { accept: 'text/html' } }), 'alice\'s token on /');
  assert.equal(stack.appRequests().length, appBefore, 'the app never saw alice\'s token');

  const bobRes = await bearerCall(bobToken);
  assert.equal(bobRes.status, 200, `bob's token: ${bobRes.status} ${bobRes.body}`);
  assert.equal(JSON.parse(bobRes.body).sub, 'bob');

  // Cookies never decide a bearer request (route "api-bearer" drops them before the oauth2
  // filter and this filter): alice's token with bob's cookies is still refused, and bob's token
  // with his own cookies passes (they are not mistaken for unreadable session cookies).
  const bobCookies = bob.jar.cookieHeader(new URL(stack.base));
  assert.match(bobCookies, /IdToken=/);
  assertRefusedByFilter(await bearerCall(aliceToken, { headers: { cookie: bobCookies } }), 'alice\'s token with bob\'s cookies');
  const bobBoth = await bearerCall(bobToken, { headers: { cookie: bobCookies } });
  assert.equal(bobBoth.status, 200, `bob's token with his cookies: ${bobBoth.status} ${bobBoth.body}`);
  assert.equal(JSON.parse(bobBoth.body).via, 'access_token');
  assert.deepEqual(bobBoth.setCookies, []);

  // Bob's browser (cookies; the oauth2 filter forwards his access token) keeps working.
  const page = await bob.request(`${stack.base}/`);
  assert.equal(page.status, 200);
  assert.match(page.body, /id="who">bob</);
  assert.equal((await me(bob)).sid, decodeJwt(bobToken).payload.sid);

  // Alice logs in again: a new session, a new access token that works.
  const alice2 = new Browser('alice-again');
  await login(alice2, `${stack.base}/`, 'alice');
  const newToken = await accessToken(alice2);
  assert.notEqual(decodeJwt(newToken).payload.sid, aliceSession.sid);
  assert.equal((await bearerCall(newToken)).status, 200);
}));

test('jwt_authn checks the token before this filter: a bad signature, an opaque token or another scheme never reach it', () => withDiagnostics(stack, async () => {
  assert.ok(aliceToken && bobToken, 'the first test logged alice and bob in');
  const appBefore = stack.appRequests().length;
  const revokedBefore = await stack.stat('wasmcustom.bcl.bearer.revoked');

  const deniedBefore = await stack.stat(JWT_AUTHN_DENIED);
  // bob's live session, one bit of the signature flipped
  assertRefusedByJwtAuthn(await bearerCall(withBadSignature(bobToken)), 'bob\'s token with a bad signature');
  await waitFor('http.demo.jwt_authn.denied to increase', async () => (await stack.stat(JWT_AUTHN_DENIED)) === deniedBefore + 1);

  // a payload changed under the IdP's signature (bob's token claiming another sub)
  const [h, , s] = bobToken.split('.');
  const forgedPayload = Buffer.from(JSON.stringify({ ...decodeJwt(bobToken).payload, sub: 'mallory' })).toString('base64url');
  assertRefusedByJwtAuthn(await bearerCall(`${h}.${forgedPayload}.${s}`), 'a forged payload');

  // alice's revoked token with a bad signature: jwt_authn answers first
  assertRefusedByJwtAuthn(await bearerCall(withBadSignature(aliceToken)), 'alice\'s revoked token with a bad signature');

  // not a JWT (this filter would let an opaque token pass; jwt_authn does not), and a token
  // sent with another scheme or none: an Authorization header requires a valid JWT
  assertRefusedByJwtAuthn(await bearerCall('opaque-access-token'), 'an opaque token');
  const basic = await rawRequest(`${stack.base}/api/me`, { headers: { accept: 'application/json', authorization: 'Basic YWxpY2U6cHc=' } });
  assertRefusedByJwtAuthn(basic, 'Basic credentials', { missing: true });

  assert.equal(stack.appRequests().length, appBefore, 'the app saw none of them');
  assert.equal(await stack.stat('wasmcustom.bcl.bearer.revoked'), revokedBefore, 'none reached this filter\'s revocation check');

  // a cookie-less request without Authorization is still sent to login by the oauth2 filter
  const anonymous = await rawRequest(`${stack.base}/api/me`, { headers: { accept: 'application/json' } });
  assert.equal(anonymous.status, 302, `${anonymous.status} ${anonymous.body}`);
  assert.match(String(anonymous.headers.location), new RegExp(`^${stack.issuer}/auth\\?`));
}));
