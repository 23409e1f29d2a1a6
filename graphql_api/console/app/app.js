// The shell: the header (pages, connection state, who is signed in), the banner while the live connection is
// down, the page of the current route, and the notices. One module per page (pages/); ROUTES maps paths to them.
import { Toasts, toast } from "./components/toasts.js";
import { readUntilAnswered } from "./lib/api.js";
import { ME } from "./lib/documents.js";
import { duration } from "./lib/format.js";
import { connection, lastReconnect, start, stop } from "./lib/live.js";
import { Link, match, route } from "./lib/router.js";
import { claims, session, setViewer } from "./lib/session.js";
import { can } from "./lib/roles.js";
import { renewal, signOutEverywhere, startSignIn } from "./lib/sso.js";
import { useStore } from "./lib/store.js";
import { html, useEffect, useRef, useState } from "./lib/ui.js";
import { ActivityPage } from "./pages/activity.js";
import { AnalyticsPage } from "./pages/analytics.js";
import { GroupsPage } from "./pages/groups.js";
import { ModelPage } from "./pages/model.js";
import { NoRolePage } from "./pages/norole.js";
import { NotFoundPage } from "./pages/notfound.js";
import { PatchPage } from "./pages/patch.js";
import { QueuePage } from "./pages/queue.js";
import { SignInPage } from "./pages/signin.js";
import { WebhooksPage } from "./pages/webhooks.js";

const ROUTES = [
  ["", QueuePage, "Queue"],
  ["groups", GroupsPage, "Groups"],
  ["patches/:id", PatchPage, "Patch"],
  ["analytics", AnalyticsPage, "Analytics"],
  ["model", ModelPage, "Model"],
  ["activity", ActivityPage, "Activity"],
  ["webhooks", WebhooksPage, "Webhooks"],
];
// [path, label, capability needed to see the link (the page itself still says why it shows nothing)]
const NAV = [["", "Queue"], ["groups", "Groups"], ["analytics", "Analytics"], ["model", "Model"], ["activity", "Activity"], ["webhooks", "Webhooks", "administer"]];
const GRAPHIQL = document.querySelector('meta[name="hitl-graphiql"]')?.content === "on";

const CLOSE_REASONS = { 1001: "the server is going away (restart or rolling update)", 1006: "the connection dropped", 4408: "the console fell behind (slow consumer)", 4499: "no answer from the server" };

function ConnectionState() {
  const state = useStore(connection);
  const label = { connected: "Live", connecting: "Connecting…", reconnecting: "Reconnecting…", starting: "Reconnecting…", stopped: "Offline" }[state.status];
  return html`<span class=${`conn conn-${state.status}`} title="Live updates (WebSocket)"><span class="dot" aria-hidden="true"></span>${label}</span>`;
}

function Banner() {
  const state = useStore(connection);
  const reconnect = useStore(lastReconnect);
  useEffect(() => {
    if (!reconnect) return undefined;
    const timer = setTimeout(() => {
      const missed = lastReconnect.get()?.missed ?? 0;
      toast(missed ? `Reconnected: caught up on ${missed} event${missed === 1 ? "" : "s"} missed while disconnected.` : "Reconnected: nothing was missed.", "success");
    }, 1500);
    return () => clearTimeout(timer);
  }, [reconnect?.at]);
  if (state.status !== "reconnecting" && state.status !== "starting") return html`<div class="banner-slot" role="status" aria-live="polite"></div>`;
  const why = state.closed ? CLOSE_REASONS[state.closed.code] ?? `closed with code ${state.closed.code}` : "the service cannot be reached";
  return html`<div class="banner-slot" role="status" aria-live="polite">
    <div class="banner" id="connection-banner">
      <strong>Disconnected</strong> — ${why}. Reconnecting${state.attempt ? ` (attempt ${state.attempt})` : ""}…
      Live updates are paused and this page may be out of date; missed events are replayed on reconnect.
    </div>
  </div>`;
}

// Single sign-on that cannot be renewed: sign in again before the session ends (lib/sso.js).
function RenewalNotice() {
  const problem = useStore(renewal);
  if (!problem) return null;
  return html`<div class="banner" id="renewal-banner" role="alert">
    <strong>Sign in again</strong> — ${problem.problem} Your session ends at ${new Date(problem.expiresAt).toLocaleTimeString()}.
    <button type="button" class="small" onClick=${() => startSignIn()}>Sign in with SSO</button>
  </div>`;
}

function Header({ viewer, path }) {
  const { sso } = useStore(session);
  const exp = claims().exp;
  const section = path.split("/")[0] === "patches" ? "" : path.split("/")[0];
  return html`<header class="topbar">
    <a class="skip" href="#main">Skip to content</a>
    <${Link} to="" class="brand"><img src="assets/app/icon.svg" alt="" width="22" height="22" /> HITL <span>Reviewer console</span><//>
    <nav aria-label="Console pages"><ul>
      ${NAV.filter(([, , capability]) => !capability || can(viewer.roles, capability)).map(([to, label]) => html`<li><${Link} to=${to} aria-current=${section === to ? "page" : null}>${label}<//></li>`)}
      ${GRAPHIQL ? html`<li><a href="../graphql" target="_blank" rel="noopener">GraphiQL</a></li>` : null}
    </ul></nav>
    <${ConnectionState} />
    <div class="who">
      <span>Signed in as <strong class="subject">${viewer.subject}</strong> <span class="roles">(${viewer.roles.join(", ") || "no role"})</span></span>
      ${sso
        ? html`<span class="expires">signed in with SSO</span>`
        : exp ? html`<span class="expires" title=${new Date(exp * 1000).toISOString()}>token expires in ${duration(exp - Date.now() / 1000)}</span>` : null}
      <button type="button" class="small ghost" onClick=${() => signOutEverywhere()}>Sign out</button>
    </div>
  </header>`;
}

export function App() {
  const { token, viewer, reason, detail, epoch } = useStore(session);
  const { path } = useStore(route);
  const [problem, setProblem] = useState(null);
  const [attempt, setAttempt] = useState(0);
  const first = useRef(true);

  useEffect(() => {
    if (!token) {
      stop();
      return undefined;
    }
    let cancelled = false;
    setProblem(null);
    readUntilAnswered(ME, {}, { current: () => !cancelled, onRetry: setProblem })
      .then((data) => {
        if (data === undefined) return null;
        setProblem(null);
        setViewer(data.me);
        return data.me.roles.length ? start() : null; // no role: nothing else is allowed, the live connection neither
      })
      .catch((error) => !cancelled && error.code !== "UNAUTHENTICATED" && setProblem(error));
    return () => {
      cancelled = true;
    };
  }, [epoch, attempt]); // not the token itself: a renewed one (single sign-on) keeps the session

  const found = match(ROUTES, path);
  useEffect(() => {
    document.title = `${ROUTES.find(([, component]) => component === found?.component)?.[2] ?? "Not found"} · HITL reviewer console`;
    if (first.current) {
      first.current = false;
      return;
    }
    requestAnimationFrame(() => document.querySelector("main h1")?.focus());
  }, [path]);

  if (!token) return html`<${SignInPage} reason=${reason} detail=${detail} />`;
  if (!viewer) {
    return html`<main id="main" class="signin"><div class="card signin-card">
      ${problem
        ? html`<h1>Cannot reach the service</h1><p class="problem" role="alert">${problem.message}</p>
            <p class="muted">Trying again by itself.</p>
            <button type="button" onClick=${() => setAttempt((n) => n + 1)}>Try again now</button>
            <button type="button" class="link" onClick=${() => signOutEverywhere()}>Sign out</button>`
        : html`<h1>Signing in…</h1><p class="muted">Checking your token with the service.</p>`}
    </div></main>`;
  }
  const Page = viewer.roles.length ? found?.component ?? NotFoundPage : NoRolePage;
  return html`
    <${Header} viewer=${viewer} path=${path} />
    <${RenewalNotice} />
    <${Banner} />
    <main id="main">
      <${Page} key=${path.split("/")[0]} params=${found?.params ?? {}} viewer=${viewer} />
    </main>
    <${Toasts} />`;
}
