// Demo and test OpenID Provider for the back-channel logout filter.
//
// node-oidc-provider (a certified OP) configured for the demo: development login
// interactions (any login and password), RP-initiated logout, back-channel logout, and JWT
// access tokens carrying `sid` for the demo app's API (resource indicator <app-url>/api).
// It sends the real logout tokens; nothing here imitates them.
//
// Configuration (command-line flags win over environment variables):
//   --port N            IDP_PORT            listen port (default 3000; 0 picks a free one)
//   --host H            IDP_LISTEN_HOST     listen address (default 127.0.0.1)
//   --issuer URL        IDP_ISSUER          issuer (default http://127.0.0.1:<port>)
//   --app-url URL       DEMO_APP_URL        browser-facing base URL of Envoy
//                                           (default http://127.0.0.1:10000)
//   --backchannel-url   BACKCHANNEL_URL     where the IdP POSTs logout tokens
//                                           (default <app-url>/bff/backchannel)
//   --client-id         CLIENT_ID           (default demo-app)
//   --client-secret     CLIENT_SECRET       (default demo-app-secret)
//   --other-backchannel-url OTHER_APP_BACKCHANNEL_URL  back-channel URI of `other-app` (default none)
//   --api-audience URL  API_AUDIENCE        resource indicator (RFC 8707) of the demo app's API, the
//                                           `aud` of the JWT access tokens (default <app-url>/api)
//   --jwks-file PATH    IDP_JWKS_FILE       private JWKS (default dev-keys/jwks.json beside this file)
//   --test-endpoints    IDP_TEST_ENDPOINTS=1   enables POST /__test/rotate-keys and GET /__test/events
//   --backchannel-allow-hosts a,b  IDP_BACKCHANNEL_ALLOW_HOSTS  host names, besides loopback,
//                                           that back-channel calls may reach (docker-compose: envoy)
//   IDP_COOKIE_KEYS     comma-separated keys signing the IdP's cookies (default: random per process)
//
// Output: one human-readable line per event, and machine-readable lines
// `IDP_EVENT {json}` (ready, backchannel.success, backchannel.error, end_session.success,
// keys.rotated, ...). Stops on SIGTERM/SIGINT.

import { randomBytes, generateKeyPairSync, createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isIP } from 'node:net';

// oidc-provider 9 prints an "Unsupported runtime" warning on Node < 22; it works on Node 20.
import Provider, { errors } from 'oidc-provider';
// oidc-provider's development in-memory adapter (pinned version): one store for the whole
// process, handed to every Provider instance (see buildProvider).
import { createMemoryAdapter } from 'oidc-provider/lib/adapters/memory_adapter.js';

const here = dirname(fileURLToPath(import.meta.url));

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    issuer: { type: 'string' },
    'app-url': { type: 'string' },
    'backchannel-url': { type: 'string' },
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'other-backchannel-url': { type: 'string' },
    'api-audience': { type: 'string' },
    'jwks-file': { type: 'string' },
    'test-endpoints': { type: 'boolean' },
    'backchannel-allow-hosts': { type: 'string' },
  },
  strict: true,
});

const env = process.env;
const opt = (flag, name, dflt) => args[flag] ?? (env[name] !== undefined && env[name] !== '' ? env[name] : dflt);

const listenPort = Number(opt('port', 'IDP_PORT', '3000'));
const listenHost = opt('host', 'IDP_LISTEN_HOST', '127.0.0.1');
const appUrl = stripSlash(opt('app-url', 'DEMO_APP_URL', 'http://127.0.0.1:10000'));
const backchannelUrl = opt('backchannel-url', 'BACKCHANNEL_URL', `${appUrl}/bff/backchannel`);
const clientId = opt('client-id', 'CLIENT_ID', 'demo-app');
const clientSecret = opt('client-secret', 'CLIENT_SECRET', 'demo-app-secret');
const otherBackchannelUrl = opt('other-backchannel-url', 'OTHER_APP_BACKCHANNEL_URL', undefined);
const apiAudience = opt('api-audience', 'API_AUDIENCE', `${appUrl}/api`);
const API_SCOPE = 'api';
const jwksFile = resolve(opt('jwks-file', 'IDP_JWKS_FILE', resolve(here, 'dev-keys/jwks.json')));
const testEndpoints = args['test-endpoints'] === true || env.IDP_TEST_ENDPOINTS === '1';
const allowHosts = new Set(
  String(opt('backchannel-allow-hosts', 'IDP_BACKCHANNEL_ALLOW_HOSTS', ''))
    .split(',').map((h) => h.trim().toLowerCase()).filter(Boolean),
);
const cookieKeys = env.IDP_COOKIE_KEYS
  ? env.IDP_COOKIE_KEYS.split(',')
  : [randomBytes(32).toString('base64url')];

if (!Number.isInteger(listenPort) || listenPort < 0 || listenPort > 65535) {
  fail(`invalid port: ${listenPort}`);
}

function stripSlash(url) {
  return String(url).replace(/\/+$/, '');
}

function fail(message) {
  process.stderr.write(`idp: ${message}\n`);
  process.exit(2);
}

// ---------------------------------------------------------------- events / logging
const events = [];
function emit(event, details = {}) {
  const record = { ts: new Date().toISOString(), event, ...details };
  events.push(record);
  if (events.length > 1000) events.shift();
  process.stdout.write(`IDP_EVENT ${JSON.stringify(record)}\n`);
}

// ---------------------------------------------------------------- keys
function loadJwks(path) {
  let parsed;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    fail(`cannot read the signing keys from ${path}: ${err.message}`);
  }
  if (!parsed || !Array.isArray(parsed.keys) || parsed.keys.length === 0) {
    fail(`${path} holds no keys (expected a private JWKS: {"keys": [...]})`);
  }
  for (const key of parsed.keys) {
    if (!key.kid || !key.d) fail(`${path}: every key needs a "kid" and its private part`);
  }
  return parsed.keys;
}

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  const kid = `rotated-${new Date().toISOString().replace(/[^0-9]/g, '').slice(0, 14)}-${randomBytes(4).toString('hex')}`;
  return { ...jwk, kid, alg: 'RS256', use: 'sig' };
}

function publicKid(jwk) {
  // check that the JWK is a usable key before the provider sees it
  createPublicKey({ key: jwk, format: 'jwk' });
  return jwk.kid;
}

let signingKeys = loadJwks(jwksFile);
signingKeys.forEach(publicKid);

// ---------------------------------------------------------------- back-channel fetch
// oidc-provider refuses by default to connect to special-use addresses (its SSRF protection),
// which includes loopback. The demo's back-channel URIs are loopback (or the compose service
// name), so allow exactly those host names and nothing else.
function backchannelHostAllowed(hostname) {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host === '::1') return true;
  if (isIP(host) === 4 && host.startsWith('127.')) return true;
  return allowHosts.has(host);
}

async function restrictedFetch(url, options) {
  const target = new URL(url);
  if (!backchannelHostAllowed(target.hostname)) {
    throw new Error(`idp: outgoing request to ${target.host} refused (only loopback and IDP_BACKCHANNEL_ALLOW_HOSTS)`);
  }
  const { dispatcher, ...rest } = options; // drop the special-use-address guard for these hosts
  return globalThis.fetch(url, rest);
}

// ---------------------------------------------------------------- pages (no external resources)
function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;margin:40px auto;max-width:34em;color:#222}
.card{background:#f7f7f7;padding:1em 2em 1.5em;border-radius:4px;box-shadow:0 2px 2px rgba(0,0,0,.2)}
button{font-size:1em;padding:.5em 1em;margin:.3em 0;width:100%;cursor:pointer}
code{background:#eee;padding:0 .2em}</style></head>
<body><div class="card">${body}</div></body></html>`;
}

function escapeHtml(value) {
  return String(value).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

// ---------------------------------------------------------------- provider
function buildConfiguration(keys) {
  const demoClient = {
    client_id: clientId,
    client_secret: clientSecret,
    client_name: 'Demo app behind Envoy',
    application_type: 'web',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    // Envoy's oauth2 filter: auth_type BASIC_AUTH sends client_secret_basic; its default
    // (URL_ENCODED_BODY) sends client_secret_post. Accept the configured one.
    token_endpoint_auth_method: env.CLIENT_AUTH_METHOD || 'client_secret_basic',
    redirect_uris: [`${appUrl}/oauth2/callback`],
    post_logout_redirect_uris: [`${appUrl}/`, `${appUrl}/signed-out`],
    backchannel_logout_uri: backchannelUrl,
    backchannel_logout_session_required: true,
  };
  const otherClient = {
    client_id: 'other-app',
    client_secret: 'other-app-secret',
    client_name: 'Another app of the same IdP session',
    application_type: 'web',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: [`${appUrl}/other-app/callback`],
    post_logout_redirect_uris: [`${appUrl}/signed-out`],
    ...(otherBackchannelUrl
      ? { backchannel_logout_uri: otherBackchannelUrl, backchannel_logout_session_required: true }
      : {}),
  };

  return {
    clients: [demoClient, otherClient],
    jwks: { keys },
    cookies: { keys: cookieKeys },
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    // put the profile claims in the ID token too: the demo app shows them from the IdToken cookie
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true }, // development login form: any login and password
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource,
        postLogoutSuccessSource,
      },
      revocation: { enabled: true },
      // The access token of the demo client is a JWT (RFC 9068) for the demo app's API, so that
      // an API client holding only that token can call through Envoy (jwt_authn checks it, the
      // back-channel logout filter's session.bearer_tokens refuses it once its session ends).
      // Envoy's oauth2 filter sends no `resource` parameter: defaultResource makes the demo
      // client's authorization request (and its token request) ask for the API, and
      // useGrantedResource makes the token endpoint use the resource granted with the code.
      // The ID token is unchanged (audience: the client; the openid scope still applies).
      resourceIndicators: {
        enabled: true,
        async defaultResource(ctx, client, oneOf) {
          if (oneOf) return oneOf;
          return client.clientId === clientId ? apiAudience : undefined;
        },
        async useGrantedResource() {
          return true;
        },
        async getResourceServerInfo(ctx, resourceIndicator, client) {
          if (resourceIndicator !== apiAudience || client.clientId !== clientId) {
            throw new errors.InvalidTarget();
          }
          return {
            scope: API_SCOPE,
            audience: apiAudience,
            accessTokenTTL: 3600,
            accessTokenFormat: 'jwt', // signed RS256 with the IdP's current key, header typ at+jwt
          };
        },
      },
    },
    // node-oidc-provider (9.13) puts no `sid` in JWT access tokens (RFC 9068 does not define
    // it). Add the IdP session id, the `sid` that the ID token and the back-channel logout token
    // carry, so that a revoked session's access token can be recognised (session.bearer_tokens).
    async extraTokenClaims(ctx, token) {
      if (token.kind === 'AccessToken' && token.sid) return { sid: token.sid };
      return undefined;
    },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return {
            sub: id, name: id, preferred_username: id, email: `${id}@example.test`, email_verified: true,
          };
        },
      };
    },
    // First-party demo clients: no consent screen, the grant is created on login.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        const existing = await ctx.oidc.provider.Grant.find(grantId);
        if (existing) return existing;
      }
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid profile email');
      if (ctx.oidc.client.clientId === clientId) grant.addResourceScope(apiAudience, API_SCOPE);
      await grant.save();
      return grant;
    },
    fetch: restrictedFetch,
    async renderError(ctx, out) {
      ctx.type = 'html';
      ctx.body = page('Error', `<h1>Error</h1>${Object.entries(out)
        .map(([k, v]) => `<p><strong>${escapeHtml(k)}</strong>: ${escapeHtml(v)}</p>`).join('')}`);
    },
    ttl: {
      Session: 8 * 3600,
      Interaction: 3600,
      Grant: 8 * 3600,
      AccessToken: 3600,
      IdToken: 3600,
      AuthorizationCode: 60,
      RefreshToken: 8 * 3600,
    },
  };
}

async function logoutSource(ctx, form) {
  const account = ctx.oidc.session?.accountId;
  ctx.body = page('Sign out', `<h1>Sign out of the IdP?</h1>
<p>Signed in as <strong id="idp-account">${escapeHtml(account ?? '?')}</strong> at ${escapeHtml(ctx.host)}.</p>
<p>"Yes" ends the whole IdP session: every client that registered a back-channel logout URI
gets a logout token.</p>
${form}
<button id="logout-yes" autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button id="logout-no" type="submit" form="op.logoutForm">No, stay signed in</button>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out', `<h1 id="signed-out">Signed out</h1>
<p>The IdP session has ended. Back-channel logout tokens went to the clients of that session.</p>`);
}

function attachEvents(provider) {
  provider.on('backchannel.success', (ctx, client, accountId, sid) => {
    emit('backchannel.success', { client_id: client.clientId, sub: accountId, sid, uri: client.backchannelLogoutUri });
  });
  provider.on('backchannel.error', (ctx, err, client, accountId, sid) => {
    emit('backchannel.error', {
      client_id: client.clientId, sub: accountId, sid, uri: client.backchannelLogoutUri, error: err.message,
    });
  });
  provider.on('end_session.success', (ctx) => {
    emit('end_session.success', { client_id: ctx.oidc.client?.clientId });
  });
  provider.on('interaction.ended', (ctx) => {
    emit('interaction.ended', { account: ctx.oidc.session?.accountId });
  });
  provider.on('grant.success', (ctx) => {
    emit('grant.success', { client_id: ctx.oidc.client?.clientId, grant_type: ctx.oidc.params?.grant_type });
  });
  provider.on('grant.error', (ctx, err) => {
    emit('grant.error', { client_id: ctx.oidc.client?.clientId, error: err.message, description: err.error_description });
  });
  provider.on('authorization.error', (ctx, err) => {
    emit('authorization.error', { error: err.message, description: err.error_description });
  });
  provider.on('end_session.error', (ctx, err) => {
    emit('end_session.error', { error: err.message, description: err.error_description });
  });
  provider.on('server_error', (ctx, err) => {
    emit('server_error', { error: err.message });
  });
}

let issuer;
let currentCallback;
const sharedAdapter = createMemoryAdapter(0);

function buildProvider(keys) {
  // Every Provider instance of this process shares one in-memory store and the same cookie
  // keys, so a new instance (key rotation) keeps the sessions, grants and interactions of the
  // previous one.
  const provider = new Provider(issuer, { ...buildConfiguration(keys), adapter: sharedAdapter });
  provider.proxy = false;
  attachEvents(provider);
  return provider;
}

// ---------------------------------------------------------------- test-only admin endpoints
function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(text);
}

function handleTestEndpoint(req, res, url) {
  if (url.pathname === '/__test/rotate-keys' && req.method === 'POST') {
    const previous = signingKeys[0].kid;
    const key = newSigningKey();
    const nextKeys = [key, ...signingKeys]; // new key first: it signs from now on; old ones still verify
    const provider = buildProvider(nextKeys);
    signingKeys = nextKeys;
    currentCallback = provider.callback();
    emit('keys.rotated', { kid: key.kid, previous });
    sendJson(res, 200, { kid: key.kid, previous, kids: signingKeys.map((k) => k.kid) });
    return true;
  }
  if (url.pathname === '/__test/events' && req.method === 'GET') {
    const since = Number(url.searchParams.get('since') ?? 0) || 0;
    sendJson(res, 200, { next: events.length, events: events.slice(since) });
    return true;
  }
  if (url.pathname.startsWith('/__test/')) {
    sendJson(res, 404, { error: 'not_found' });
    return true;
  }
  return false;
}

// ---------------------------------------------------------------- server
const server = createServer((req, res) => {
  if (!currentCallback) {
    res.writeHead(503).end();
    return;
  }
  if (testEndpoints && req.url.startsWith('/__test/')) {
    const url = new URL(req.url, 'http://idp.invalid');
    if (handleTestEndpoint(req, res, url)) return;
  }
  if (req.url === '/jwks' || req.url.startsWith('/.well-known/')) {
    // who fetches the keys and when (the filter's JWKS fetches show up here)
    emit('http.request', { method: req.method, path: req.url, user_agent: req.headers['user-agent'] });
  }
  currentCallback(req, res);
});
server.keepAliveTimeout = 5000;

server.on('error', (err) => fail(`cannot listen on ${listenHost}:${listenPort}: ${err.message}`));

server.listen(listenPort, listenHost, () => {
  const { port } = server.address();
  issuer = stripSlash(opt('issuer', 'IDP_ISSUER', `http://127.0.0.1:${port}`));
  try {
    currentCallback = buildProvider(signingKeys).callback();
  } catch (err) {
    fail(`invalid provider configuration: ${err.message}`);
  }
  emit('ready', {
    issuer,
    port,
    client_id: clientId,
    redirect_uri: `${appUrl}/oauth2/callback`,
    backchannel_logout_uri: backchannelUrl,
    api_audience: apiAudience,
    kid: signingKeys[0].kid,
    test_endpoints: testEndpoints,
  });
  process.stdout.write(`idp: ready, issuer ${issuer}, listening on ${listenHost}:${port}\n`);
});

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`idp: ${signal}, stopping\n`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

