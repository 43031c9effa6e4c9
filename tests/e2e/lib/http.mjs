// A small HTTP client with a cookie jar, for driving the login flow as a browser would
// (no dependencies). Cookies are keyed by host name without port, as browsers do; Secure
// cookies are kept and sent on loopback over http (browsers treat 127.0.0.1 and localhost as
// potentially trustworthy origins), and only there.
import { request as httpRequest } from 'node:http';

function isLoopback(hostname) {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function defaultPath(pathname) {
  if (!pathname.startsWith('/')) return '/';
  const last = pathname.lastIndexOf('/');
  return last <= 0 ? '/' : pathname.slice(0, last);
}

function pathMatches(requestPath, cookiePath) {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
}

export class CookieJar {
  constructor() {
    this.cookies = new Map(); // key host|path|name -> cookie
  }

  setFromResponse(url, setCookieHeaders) {
    for (const header of setCookieHeaders) this.setCookie(url, header);
  }

  setCookie(url, header) {
    const parts = header.split(';');
    const first = parts.shift();
    const eq = first.indexOf('=');
    if (eq <= 0) return;
    const name = first.slice(0, eq).trim();
    const value = first.slice(eq + 1).trim();
    const cookie = {
      name, value, host: url.hostname, path: defaultPath(url.pathname), secure: false, expires: undefined,
    };
    let maxAge;
    for (const attr of parts) {
      const [rawKey, ...rest] = attr.split('=');
      const key = rawKey.trim().toLowerCase();
      const attrValue = rest.join('=').trim();
      if (key === 'path' && attrValue.startsWith('/')) cookie.path = attrValue;
      else if (key === 'secure') cookie.secure = true;
      else if (key === 'max-age') maxAge = Number(attrValue);
      else if (key === 'expires') {
        const t = Date.parse(attrValue);
        if (!Number.isNaN(t)) cookie.expires = t;
      } else if (key === 'domain' && attrValue) cookie.host = attrValue.replace(/^\./, '').toLowerCase();
    }
    if (maxAge !== undefined && !Number.isNaN(maxAge)) cookie.expires = Date.now() + maxAge * 1000;
    if (cookie.secure && url.protocol !== 'https:' && !isLoopback(url.hostname)) return;
    const key = `${cookie.host}|${cookie.path}|${name}`;
    if (cookie.expires !== undefined && cookie.expires <= Date.now()) {
      this.cookies.delete(key);
      return;
    }
    this.cookies.set(key, cookie);
  }

  cookieHeader(url) {
    const now = Date.now();
    const matching = [];
    for (const [key, c] of this.cookies) {
      if (c.expires !== undefined && c.expires <= now) {
        this.cookies.delete(key);
        continue;
      }
      if (c.host !== url.hostname && !url.hostname.endsWith(`.${c.host}`)) continue;
      if (!pathMatches(url.pathname, c.path)) continue;
      if (c.secure && url.protocol !== 'https:' && !isLoopback(url.hostname)) continue;
      matching.push(c);
    }
    matching.sort((a, b) => b.path.length - a.path.length);
    return matching.map((c) => `${c.name}=${c.value}`).join('; ');
  }

  get(name, host) {
    for (const c of this.cookies.values()) {
      if (c.name === name && (!host || c.host === host)) return c.value;
    }
    return undefined;
  }

  names() {
    return [...new Set([...this.cookies.values()].map((c) => c.name))].sort();
  }

  /** A copy holding only the cookies whose name passes `filter` (for "another client"). */
  copy(filter = () => true) {
    const jar = new CookieJar();
    for (const [key, c] of this.cookies) if (filter(c.name)) jar.cookies.set(key, { ...c });
    return jar;
  }
}

/** One HTTP request (no redirect following). Resolves {status, headers, setCookies, body, url}. */
export function rawRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 10000 } = {}) {
  const target = new URL(url);
  return new Promise((resolvePromise, reject) => {
    const req = httpRequest(target, { method, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const setCookies = res.headers['set-cookie'] ?? [];
        resolvePromise({
          status: res.statusCode,
          headers: res.headers,
          setCookies,
          body: Buffer.concat(chunks).toString('utf8'),
          url: target.href,
        });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${url}`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

export class Browser {
  constructor(name = 'client', jar = new CookieJar()) {
    this.name = name;
    this.jar = jar;
    this.history = []; // [{method, url, status, location}]
  }

  async request(url, { method = 'GET', headers = {}, form } = {}) {
    const target = new URL(url);
    const allHeaders = { accept: 'text/html,application/xhtml+xml', ...headers };
    const cookie = this.jar.cookieHeader(target);
    if (cookie) allHeaders.cookie = cookie;
    let body;
    if (form) {
      body = new URLSearchParams(form).toString();
      allHeaders['content-type'] = 'application/x-www-form-urlencoded';
      allHeaders['content-length'] = Buffer.byteLength(body);
    }
    const res = await rawRequest(target.href, { method, headers: allHeaders, body });
    this.jar.setFromResponse(target, res.setCookies);
    this.history.push({ method, url: target.href, status: res.status, location: res.headers.location });
    return res;
  }

  /** Request and follow redirects as a browser would (303, and 301/302 after POST, become GET). */
  async navigate(url, options = {}, { maxRedirects = 20, stopWhen } = {}) {
    let current = new URL(url);
    let { method = 'GET', form, headers } = options;
    for (let i = 0; i <= maxRedirects; i += 1) {
      const res = await this.request(current.href, { method, form, headers });
      if (stopWhen && stopWhen(res)) return res;
      if (![301, 302, 303, 307, 308].includes(res.status) || !res.headers.location) return res;
      current = new URL(res.headers.location, current);
      if (res.status === 303 || ((res.status === 301 || res.status === 302) && method !== 'GET')) {
        method = 'GET';
        form = undefined;
      }
    }
    throw new Error(`${this.name}: too many redirects from ${url}: ${JSON.stringify(this.history.slice(-maxRedirects))}`);
  }

  trail(last = 12) {
    return this.history.slice(-last).map((h) => `${h.method} ${h.url} -> ${h.status}${h.location ? ` ${h.location}` : ''}`).join('\n');
  }
}

/** The first <form>'s action and its inputs (name -> value). */
export function parseForm(html, baseUrl, formId) {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)];
  const chosen = formId ? forms.find((f) => new RegExp(`id="${formId}"`).test(f[1])) : forms[0];
  if (!chosen) throw new Error(`no form${formId ? ` #${formId}` : ''} in page ${baseUrl}:\n${html.slice(0, 2000)}`);
  const action = /action="([^"]*)"/i.exec(chosen[1])?.[1] ?? baseUrl;
  const method = (/method="([^"]*)"/i.exec(chosen[1])?.[1] ?? 'GET').toUpperCase();
  const fields = {};
  for (const input of chosen[2].matchAll(/<input\b([^>]*)>/gi)) {
    const name = /name="([^"]*)"/i.exec(input[1])?.[1];
    if (!name) continue;
    fields[name] = decodeEntities(/value="([^"]*)"/i.exec(input[1])?.[1] ?? '');
  }
  return { action: new URL(decodeEntities(action), baseUrl).href, method, fields };
}

function decodeEntities(s) {
  return s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}
