// Entry point: take a token given as #token=… (and remove it from the address bar), finish a single sign-on that
// the IdP sent back to /console/callback, then start the app.
import { App } from "./app.js";
import { renewConnection } from "./lib/live.js";
import { takeTokenFromFragment } from "./lib/session.js";
import { completeSignIn, isCallback, loadSso, resume, whenRenewed } from "./lib/sso.js";
import { html, render } from "./lib/ui.js";

takeTokenFromFragment();
await loadSso();
whenRenewed(renewConnection);
if (isCallback()) await completeSignIn();
else await resume();
const root = document.getElementById("app");
root.textContent = "";
render(html`<${App} />`, root);
