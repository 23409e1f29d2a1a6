// Sign-in: with the organisation's identity provider when the service names one (lib/sso.js), or a bearer token
// pasted here (or given once as /console#token=…): service accounts and development. Kept in this tab only.
import { signIn } from "../lib/session.js";
import { ssoConfig, startSignIn } from "../lib/sso.js";
import { useStore } from "../lib/store.js";
import { html, useState } from "../lib/ui.js";

const REASONS = {
  expired: "Your session has ended: the token expired or was refused. Paste a new token to go on.",
  rejected: "The service refused this token. Paste a valid one.",
  forbidden: "This token's roles may not use the console.",
  "signed-out": "You are signed out.",
  "sso-failed": "Single sign-on did not complete. Try again.",
};

function SsoSignIn() {
  const config = useStore(ssoConfig);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState(null);
  if (!config) return null;
  const go = () => {
    setBusy(true);
    setProblem(null);
    startSignIn().catch((error) => {
      setBusy(false);
      setProblem(`The identity provider cannot be reached (${error?.message ?? error}).`);
    });
  };
  return html`<div class="sso">
    <button type="button" class="primary" onClick=${go} disabled=${busy}>Sign in with SSO</button>
    <p class="muted small">With your organisation's account (${new URL(config.issuer).host}).</p>
    ${problem ? html`<p class="problem" role="alert">${problem}</p>` : null}
    <p class="muted small or">or paste a token</p>
  </div>`;
}

export function SignInPage({ reason, detail }) {
  const [value, setValue] = useState("");
  const [problem, setProblem] = useState(null);
  const submit = (event) => {
    event.preventDefault();
    const token = value.trim().replace(/^Bearer\s+/i, "");
    if (!token) {
      setProblem("Paste a token first.");
      return;
    }
    signIn(token);
  };
  return html`<main id="main" class="signin">
    <form class="card signin-card" onSubmit=${submit} aria-labelledby="signin-title" noValidate>
      <h1 id="signin-title">Sign in to the reviewer console</h1>
      ${reason ? html`<p class="notice" role="alert">${REASONS[reason] ?? reason}${detail ? html` <span class="muted">(${detail})</span>` : null}</p>` : null}
      <${SsoSignIn} />
      <label class="field"><span>Bearer token</span>
        <textarea name="token" rows="5" spellcheck="false" autocomplete="off" value=${value} onInput=${(e) => setValue(e.currentTarget.value)}
          aria-describedby="token-help"></textarea>
      </label>
      <p id="token-help" class="muted small">A JWT from your identity provider, or from an operator: <code>hitl token --sub you --role reviewer --ttl 8h</code>.
        It stays in this browser tab (session storage) and is sent only to this service.</p>
      <p class="problem" role="alert">${problem}</p>
      <button type="submit" class="primary">Sign in</button>
    </form>
  </main>`;
}
