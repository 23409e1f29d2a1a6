// Signed in, but none of the identity provider's groups maps to a role of this service (HITL_ROLE_MAP): the service
// answers FORBIDDEN to everything but `me`, so there is nothing to show but who you are and what to ask for.
import { html } from "../lib/ui.js";

export function NoRolePage({ viewer }) {
  return html`<section class="card signin-card" aria-labelledby="norole-title">
    <h1 id="norole-title" tabindex="-1">You have no role here</h1>
    <p>You are signed in as <strong>${viewer.subject}</strong>, but none of your groups gives a role in this service,
      so you cannot see or decide patches.</p>
    <p class="muted">Ask an administrator to add you to a group that is mapped to a role (reviewer or lead).</p>
  </section>`;
}
