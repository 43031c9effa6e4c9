// Upstream app of the back-channel logout demo (no dependencies).
//
// Envoy's oauth2 filter authenticated the request and forwards the raw ID token in the
// `IdToken` cookie (and the access token as `Authorization: Bearer`). This app only decodes the
// ID token's payload to show who is logged in; it does not verify it (Envoy did the work).
//
//   GET /          HTML page: sub, sid, iss, iat, links to end the IdP session elsewhere
//   GET /api/me    the same as JSON. Without an IdToken cookie, an API client's request
//                  identified only by its `Authorization: Bearer <JWT access token>` (Envoy's
//                  jwt_authn checked its signature, issuer and audience) gets that token's
//                  claims (`"via": "access_token"`); with neither, 401 JSON
//   GET /api/token demo only: echoes the access token Envoy's oauth2 filter forwarded as
//                  `Authorization: Bearer` (and its decoded claims), so that it can be copied
//                  into an API client (curl -H "Authorization: Bearer ..."); 401 JSON without one
//   GET /signed-out  landing page after an RP-initiated logout
//   GET /healthz   readiness
//
// Configuration: --port / APP_PORT (default 8081, 0 = any free port),
// --host / APP_LISTEN_HOST (default 127.0.0.1), IDP_END_SESSION_URL (default <iss>/session/end).
// Output: `APP_EVENT {json}` lines (ready, request) and stops on SIGTERM/SIGINT.

import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: { port: { type: 'string' }, host: { type: 'string' } },
  strict: true,
});
const port = Number(args.port ?? process.env.APP_PORT ?? 8081);
const host = args.host ?? process.env.APP_LISTEN_HOST ?? '127.0.0.1';
const endSessionOverride = process.env.IDP_END_SESSION_URL || '';
const otherClientId = process.env.OTHER_CLIENT_ID || 'other-app';

function emit(event, details = {}) {
  process.stdout.write(`APP_EVENT ${JSON.stringify({ ts: new Date().toISOString(), event, ...details })}\n`);
}

function parseCookies(header) {
  const out = new Map();
  for (const part of String(header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) continue;
    const name = part.slice(0, eq).trim();
    if (!out.has(name)) out.set(name, part.slice(eq + 1).trim());
  }
  return out;
}

function decodeJwtPart(token, index) {
  const parts = String(token).split('.');
  if (parts.length !== 3) return undefined;
  try {
    const value = JSON.parse(Buffer.from(parts[index], 'base64url').toString('utf8'));
    return value && typeof value === 'object' && !Array.isArray(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
function bearerToken(req) {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return m ? m[1] : undefined;
}

function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function timeOf(seconds) {
  return typeof seconds === 'number' ? new Date(seconds * 1000).toISOString() : '';
}

function whoami(req) {
  const cookies = parseCookies(req.headers.cookie);
  const idToken = cookies.get('IdToken');
  const claims = idToken ? decodeJwtPart(idToken, 1) : undefined;
  const header = claims ? decodeJwtPart(idToken, 0) : undefined;
  const bearer = /^Bearer\s+\S+/i.test(req.headers.authorization ?? '');
  return {
    claims, header, hasIdToken: Boolean(idToken), bearer,
  };
}

function endSessionUrl(iss) {
  const base = endSessionOverride || (iss ? `${String(iss).replace(/\/+$/, '')}/session/end` : '');
  if (!base) return '';
  const url = new URL(base);
  url.searchParams.set('client_id', otherClientId);
  return url.href;
}

const style = `body{font-family:system-ui,sans-serif;margin:40px auto;max-width:44em;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
code{background:#eee;padding:0 .2em}ol li{margin:.4em 0}`;

function homePage(req) {
  const { claims, hasIdToken, bearer } = whoami(req);
  if (!claims) {
    return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Demo app</title><style>${style}</style></head>
<body><h1>Demo app</h1><p id="anonymous">No readable <code>IdToken</code> cookie reached the app
(${hasIdToken ? 'the cookie is not a JWT' : 'no cookie'}). Envoy's oauth2 filter should have sent you to the login page.</p></body></html>`;
  }
  const logoutElsewhere = endSessionUrl(claims.iss);
  const rows = [
    ['sub', claims.sub, 'sub'],
    ['sid (IdP session id)', claims.sid, 'sid'],
    ['name', claims.name, 'name'],
    ['iss', claims.iss, 'iss'],
    ['aud', Array.isArray(claims.aud) ? claims.aud.join(' ') : claims.aud, 'aud'],
    ['iat (ID token issued)', timeOf(claims.iat), 'iat'],
    ['exp', timeOf(claims.exp), 'exp'],
    ['access token forwarded as Bearer', bearer ? 'yes' : 'no', 'bearer'],
  ].map(([label, value, id]) => `<tr><th>${escapeHtml(label)}</th><td id="${id}">${escapeHtml(value)}</td></tr>`).join('\n');
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Demo app: ${escapeHtml(claims.sub)}</title><style>${style}</style></head>
<body>
<h1>Hello, <span id="who">${escapeHtml(claims.sub)}</span></h1>
<p>Envoy's oauth2 filter logged you in; the back-channel logout filter let this request through
because the IdP has not ended session <code>${escapeHtml(claims.sid)}</code>.</p>
<table>${rows}</table>
<h2>Watch a back-channel logout</h2>
<ol>
<li><a id="logout-elsewhere" href="${escapeHtml(logoutElsewhere)}" target="_blank" rel="noopener">End this IdP session from another tab</a>
(as another application of the same IdP session would) and click <strong>Yes, sign me out</strong>.
The IdP then POSTs a logout token to Envoy's <code>/bff/backchannel</code>; this tab still holds its cookies.</li>
<li>Come back here and <a id="reload" href="/">reload</a>: Envoy refuses the revoked session,
clears the cookies and sends you to the IdP's login page.</li>
</ol>
<h2>Call the API with the access token alone</h2>
<p><a id="api-token" href="/api/token">/api/token</a> shows the JWT access token Envoy forwards to
this app (it carries the same <code>sid</code>). <code>curl -H "Authorization: Bearer &lt;token&gt;" ${escapeHtml(originOf(req))}/api/me</code>
reaches the app without cookies (Envoy's <code>jwt_authn</code> checks the signature); once the IdP
session ends, the same call gets <code>401 invalid_token</code> from the back-channel logout filter.</p>
<p>Other links: <a href="/api/me">/api/me</a> (JSON) ·
<a id="signout" href="/signout">sign out here</a> (Envoy's <code>signout_path</code>: RP-initiated logout, the ordinary way)</p>
</body></html>`;
}

function originOf(req) {
  const proto = String(req.headers['x-forwarded-proto'] ?? 'http').split(',')[0].trim();
  return `${proto}://${req.headers.host ?? '127.0.0.1:10000'}`;
}

function signedOutPage() {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>Signed out</title><style>${style}</style></head>
<body><h1 id="signed-out">Signed out</h1><p><a href="/">Log in again</a></p></body></html>`;
}

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://app.invalid');
  const { claims, header } = whoami(req);
  if (url.pathname !== '/healthz') {
    emit('request', { method: req.method, path: url.pathname, sub: claims?.sub, sid: claims?.sid });
  }
  const headers = { 'cache-control': 'no-store' };
  if (url.pathname === '/healthz') {
    res.writeHead(200, { ...headers, 'content-type': 'text/plain' }).end('ok\n');
  } else if (url.pathname === '/api/me') {
    const token = bearerToken(req);
    const atClaims = token ? decodeJwtPart(token, 1) : undefined;
    if (!claims && atClaims) {
      // an API client: no session cookie, only the access token (verified by Envoy's jwt_authn)
      const atHeader = decodeJwtPart(token, 0);
      const body = {
        via: 'access_token', sub: atClaims.sub, sid: atClaims.sid, iss: atClaims.iss, aud: atClaims.aud,
        scope: atClaims.scope, client_id: atClaims.client_id, iat: atClaims.iat, exp: atClaims.exp,
        access_token_header: { alg: atHeader?.alg, kid: atHeader?.kid, typ: atHeader?.typ },
      };
      res.writeHead(200, { ...headers, 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
      return;
    }
    if (!claims) {
      res.writeHead(401, { ...headers, 'content-type': 'application/json' }).end('{"error":"no_id_token"}\n');
      return;
    }
    const body = {
      via: 'id_token_cookie',
      sub: claims.sub, sid: claims.sid, iss: claims.iss, aud: claims.aud, name: claims.name,
      iat: claims.iat, exp: claims.exp, bearer: whoami(req).bearer,
      id_token_header: { alg: header?.alg, kid: header?.kid, typ: header?.typ },
    };
    res.writeHead(200, { ...headers, 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
  } else if (url.pathname === '/api/token') {
    const token = bearerToken(req);
    if (!token) {
      res.writeHead(401, { ...headers, 'content-type': 'application/json' }).end('{"error":"no_bearer_token"}\n');
      return;
    }
    const body = { access_token: token, header: decodeJwtPart(token, 0), claims: decodeJwtPart(token, 1) };
    res.writeHead(200, { ...headers, 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
  } else if (url.pathname === '/signed-out') {
    res.writeHead(200, { ...headers, 'content-type': 'text/html; charset=utf-8' }).end(signedOutPage());
  } else if (url.pathname === '/' || url.pathname === '/index.html') {
    res.writeHead(200, { ...headers, 'content-type': 'text/html; charset=utf-8' }).end(homePage(req));
  } else {
    res.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('not found\n');
  }
});

server.on('error', (err) => {
  process.stderr.write(`demo-app: cannot listen on ${host}:${port}: ${err.message}\n`);
  process.exit(2);
});
server.listen(port, host, () => {
  const actual = server.address().port;
  emit('ready', { port: actual });
  process.stdout.write(`demo-app: ready on http://${host}:${actual}\n`);
});

function stop(signal) {
  process.stdout.write(`demo-app: ${signal}, stopping\n`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
