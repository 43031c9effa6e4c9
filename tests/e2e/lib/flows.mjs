// The user-visible flows of the stack, driven with the cookie-jar client.
import { Browser, parseForm } from './http.mjs';

export const IDP_SESSION_COOKIE = /^_session/; // oidc-provider's session cookie (and its .sig)

function assertStatus(res, expected, what, browser) {
  if (res.status !== expected) {
    throw new Error(`${what}: expected ${expected}, got ${res.status} at ${res.url}\n${browser.trail()}\n${res.body.slice(0, 1500)}`);
  }
}

/** Whether a response is the IdP's login form (devInteractions). */
export function isLoginPage(res) {
  return res.status === 200 && /\/interaction\//.test(new URL(res.url).pathname)
    && /name="login"/.test(res.body) && /name="password"/.test(res.body);
}

/**
 * Opens appUrl; expects Envoy to send the user to the IdP's login form, posts it as a browser
 * would, follows the redirects back through /oauth2/callback and returns the app's page.
 */
export async function login(browser, appUrl, user, { password = 'any-password' } = {}) {
  const loginPage = await browser.navigate(appUrl);
  if (!isLoginPage(loginPage)) {
    throw new Error(`${browser.name}: expected the IdP's login form, got ${loginPage.status} at ${loginPage.url}\n${browser.trail()}\n${loginPage.body.slice(0, 1500)}`);
  }
  const form = parseForm(loginPage.body, loginPage.url);
  const fields = { ...form.fields, login: user, password };
  const page = await browser.navigate(form.action, { method: form.method, form: fields });
  assertStatus(page, 200, `${browser.name}: app page after login`, browser);
  return page;
}

/**
 * Ends the IdP session of `userJar` from another client: a separate cookie jar holding only the
 * IdP's session cookie (not Envoy's cookies) opens the end-session page as another application
 * (`client_id`) and confirms "Yes, sign me out". oidc-provider sends the back-channel logout
 * tokens before it answers the confirmation.
 */
export async function endIdpSessionElsewhere(issuer, userJar, { clientId = 'other-app', name = 'other-tab' } = {}) {
  const other = new Browser(name, userJar.copy((n) => IDP_SESSION_COOKIE.test(n)));
  if (other.jar.names().length === 0) throw new Error('the user has no IdP session cookie to log out with');
  const confirm = await other.navigate(`${issuer}/session/end?client_id=${encodeURIComponent(clientId)}`);
  assertStatus(confirm, 200, `${name}: end-session confirmation page`, other);
  const form = parseForm(confirm.body, confirm.url, 'op.logoutForm');
  const done = await other.navigate(form.action, { method: 'POST', form: { ...form.fields, logout: 'yes' } });
  assertStatus(done, 200, `${name}: after "Yes, sign me out"`, other);
  return { browser: other, page: done };
}
