// Single sign-on (API.md, "Single sign-on"): when /console/config.json names an issuer, "Sign in with SSO" runs the
// authorization code flow with PKCE through the IdP (the npm oidc-client-ts client, loaded only then). Its tokens
// and state stay in this tab's sessionStorage. The bearer is the IdP's access token.
//
// - Renewal: RENEW_MARGIN before the access token expires, the refresh token buys a new one; the session takes it
//   without re-rendering the pages and the WebSocket reconnects with it (live.js `renewConnection`) while the old
//   one is still valid, so the server never has to close it with 4401. Without a refresh token (or when renewal
//   fails) the `renewal` store asks the reviewer to sign in again before the session ends.
// - Sign-out: forgets the tokens here and ends the session at the IdP (its end-session endpoint), which sends the
//   browser back to the console.
import { navigate } from "./router.js";
import { claims, renewToken, session, signIn, signOut } from "./session.js";
import { createStore } from "./store.js";

// undefined while loading, null when single sign-on is off, else {issuer, clientId, scopes, redirectUri}
export const ssoConfig = createStore(undefined);
// null, or {problem, expiresAt}: renewal is not possible, sign in again before expiresAt (epoch ms)
export const renewal = createStore(null);

const CALLBACK = new URL("callback", document.baseURI);
const HOME = new URL(".", document.baseURI);
const MAX_MARGIN_S = 60; // renew this long before expiry at most, and after 3/4 of the token's lifetime at least
const REQUEST_TIMEOUT_S = 10;

let manager = null;
let timer = null;
let onRenewed = () => {};

export async function loadSso() {
  let config = null;
  try {
    const response = await fetch("config.json", { cache: "no-store", credentials: "omit" });
    config = response.ok ? (await response.json()).oidc ?? null : null;
  } catch {
    config = null;
  }
  if (config) {
    const { UserManager, WebStorageStateStore } = await import("../../vendor/oidc-client-ts/oidc-client-ts.js");
    manager = new UserManager({
      authority: config.issuer,
      client_id: config.clientId,
      redirect_uri: config.redirectUri,
      post_logout_redirect_uri: HOME.href,
      scope: config.scopes,
      response_type: "code",
      userStore: new WebStorageStateStore({ store: sessionStorage }),
      stateStore: new WebStorageStateStore({ store: sessionStorage }),
      automaticSilentRenew: false, // scheduled here, so the WebSocket can follow
      monitorSession: false,
      loadUserInfo: false,
      requestTimeoutInSeconds: REQUEST_TIMEOUT_S, // an IdP that does not answer: say so rather than wait forever
      silentRequestTimeoutInSeconds: REQUEST_TIMEOUT_S,
    });
    session.subscribe(({ token }) => !token && forget());
  }
  ssoConfig.set(config);
  return config;
}

// Called by live.js: what to do once a renewed token is in the session.
export function whenRenewed(callback) {
  onRenewed = callback;
}

export const isCallback = () => manager !== null && location.pathname === CALLBACK.pathname;

export async function startSignIn() {
  const back = location.pathname === CALLBACK.pathname ? HOME.pathname : location.pathname + location.search;
  await manager.signinRedirect({ state: { back } });
}

// The IdP sent the browser back to /console/callback: exchange the code, then open the page the sign-in began on.
export async function completeSignIn() {
  try {
    const user = await manager.signinCallback();
    signIn(user.access_token, { sso: true });
    schedule(user);
    const back = typeof user.state?.back === "string" && user.state.back.startsWith(HOME.pathname) ? user.state.back : HOME.pathname;
    navigate(back.slice(HOME.pathname.length), { replace: true });
  } catch (error) {
    navigate("", { replace: true });
    signOut("sso-failed", error?.error_description || error?.message || String(error));
  }
}

// After a reload: the session's token is the stored user's, so its renewal is scheduled again, or done now (before
// the first request) when it was due while the tab was away.
export async function resume() {
  if (!manager || !session.get().sso || !session.get().token) return;
  const user = await manager.getUser();
  if (!user || user.access_token !== session.get().token) return;
  const { due, expiresAt } = schedule(user);
  if (due === 0 && user.refresh_token) {
    clearTimeout(timer);
    await renew(expiresAt);
  }
}

export async function signOutEverywhere() {
  const user = session.get().sso && manager ? await manager.getUser() : null;
  signOut("signed-out");
  if (!user) return;
  try {
    await manager.signoutRedirect({ id_token_hint: user.id_token });
  } catch {
    // The IdP has no end-session endpoint (or cannot be reached): signed out here only.
  }
}

function schedule(user) {
  clearTimeout(timer);
  renewal.set(null);
  const { exp, iat } = claims(user.access_token);
  const expiresAt = (exp ?? user.expires_at) * 1000;
  const lifetime = exp && iat ? exp - iat : user.expires_in;
  const margin = Math.min(MAX_MARGIN_S, lifetime / 4) * 1000;
  const due = Math.max(0, expiresAt - margin - Date.now());
  if (!user.refresh_token) {
    timer = setTimeout(() => renewal.set({ problem: "Your identity provider gave no way to renew this sign-in.", expiresAt }), due);
  } else {
    timer = setTimeout(() => renew(expiresAt), due);
  }
  return { due, expiresAt };
}

async function renew(expiresAt) {
  try {
    const user = await manager.signinSilent();
    if (!session.get().token) return; // signed out meanwhile
    renewToken(user.access_token);
    schedule(user);
    onRenewed();
  } catch (error) {
    renewal.set({ problem: `Your sign-in could not be renewed (${error?.error_description || error?.message || error}).`, expiresAt });
  }
}

function forget() {
  clearTimeout(timer);
  renewal.set(null);
  manager?.removeUser();
}
