// Sign-in state. The bearer token lives in this tab's sessionStorage only: never in a cookie, never in a URL the
// server sees. `#token=…` (the links `hitl serve --dev` prints) is read once at start and removed from the
// address bar before anything else runs. A token from single sign-on (lib/sso.js) is renewed in place: `renewToken`
// changes the token but not the session (`epoch`), so the pages stay as they are.
import { createStore } from "./store.js";

const TOKEN_KEY = "hitl.console.token"; // also read by the GraphiQL page (app/graphiql.js)
const SSO_KEY = "hitl.console.sso";

// { token, sso: the token is the IdP's, viewer: {subject, roles} | null, reason: why the last session ended (shown
//   on the sign-in page), epoch: changes with each sign-in and sign-out }
export const session = createStore({
  token: sessionStorage.getItem(TOKEN_KEY), sso: sessionStorage.getItem(SSO_KEY) === "1", viewer: null, reason: null, epoch: 0,
});

export function takeTokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (!fragment.has("token")) return;
  const token = fragment.get("token").trim();
  fragment.delete("token");
  const rest = fragment.toString();
  history.replaceState(history.state, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  if (token) signIn(token);
}

export function signIn(token, { sso = false } = {}) {
  sessionStorage.setItem(TOKEN_KEY, token);
  sessionStorage.setItem(SSO_KEY, sso ? "1" : "0");
  session.set(({ epoch }) => ({ token, sso, viewer: null, reason: null, epoch: epoch + 1 }));
}

export function renewToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  session.set((current) => ({ ...current, token }));
}

export function setViewer(viewer) {
  session.set((current) => ({ ...current, viewer }));
}

// reason: "signed-out" | "expired" | "rejected" (the server refused the token) | "forbidden" | "sso-failed"
export function signOut(reason = "signed-out", detail = null) {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(SSO_KEY);
  session.set(({ epoch }) => ({ token: null, sso: false, viewer: null, reason, detail, epoch: epoch + 1 }));
}

export const token = () => session.get().token;

// True when the token's own `exp` has passed (to tell "expired" from "refused" on the sign-in page).
export const expired = () => (claims().exp ?? Infinity) * 1000 <= Date.now();

// The token's claims, for display only (the server verifies the token; the console never trusts these).
export function claims(value = token()) {
  try {
    const payload = value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload.padEnd(payload.length + ((4 - (payload.length % 4)) % 4), "=")));
  } catch {
    return {};
  }
}
