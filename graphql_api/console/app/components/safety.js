// Auto-approval safety on the model page: the guard's window, feature drift of the active model, and the model
// registry (an ADMIN activates another version: a rollback or a roll forward, audited).
import { toast } from "./toasts.js";
import { gql } from "../lib/api.js";
import { ACTIVATE } from "../lib/documents.js";
import { at, feature, number, percent } from "../lib/format.js";
import { html, useState } from "../lib/ui.js";

const DRIFT_ALERT = 0.25;

export function Guard({ guard }) {
  return html`<section class="card" aria-labelledby="guard">
    <h2 id="guard">Guard</h2>
    <p class=${`state ${guard.tripped ? "off" : "on"}`}><strong>${guard.tripped ? "Tripped" : "Watching"}</strong>
      ${guard.tripped ? html` — auto-approval paused ${at(guard.trippedAt)} until an ADMIN resumes it` : null}</p>
    <dl class="facts">
      <div><dt>Model</dt><dd class="mono">${guard.modelVersion ?? "–"}</dd></div>
      <div><dt>Outcomes in the window</dt><dd>${number(guard.outcomes)} of ${number(guard.windowSize)}</dd></div>
      <div><dt>Failed</dt><dd>${number(guard.failures)}</dd></div>
      <div><dt>Precision, 95% upper bound</dt><dd>${percent(guard.precisionUpperBound, 2)}</dd></div>
      ${guard.reason ? html`<div><dt>Why it tripped</dt><dd class="pre">${guard.reason}</dd></div>` : null}
    </dl>
    <p class="muted small">After each reported outcome of an auto-approved patch: paused when even the upper bound of its precision is below target, or too many failed. Resuming starts a new window.</p>
  </section>`;
}

export function Drift({ drift }) {
  const shown = drift.slice(0, 10);
  return html`<section class="card" aria-labelledby="drift">
    <h2 id="drift">Feature drift</h2>
    ${shown.length
      ? html`<table class="data compact">
          <caption>Population stability index: training rows vs recent submissions (above ${DRIFT_ALERT}: a major shift)</caption>
          <thead><tr><th scope="col">Feature</th><th scope="col">PSI</th></tr></thead>
          <tbody>${shown.map((d) => html`<tr class=${d.psi > DRIFT_ALERT ? "drifted" : ""}><th scope="row">${feature(d.feature)}</th>
            <td>${d.psi.toFixed(3)}${d.psi > DRIFT_ALERT ? " (drifted)" : ""}</td></tr>`)}</tbody>
        </table>`
      : html`<p class="muted">Not measured yet for this model.</p>`}
  </section>`;
}

function Activate({ version, onActivated }) {
  const [busy, setBusy] = useState(false);
  const activate = async () => {
    setBusy(true);
    try {
      await gql(ACTIVATE, { version });
      toast(`Model ${version} is active on every replica`, "success");
      onActivated();
    } catch (error) {
      toast(error.message, "error");
    } finally {
      setBusy(false);
    }
  };
  return html`<button type="button" class="small" onClick=${activate} disabled=${busy} aria-label=${`Activate ${version}`}>Activate</button>`;
}

export function Registry({ models, admin, onChanged }) {
  return html`<section class="card" aria-labelledby="registry">
    <h2 id="registry">Registry</h2>
    <table class="data compact registry">
      <caption>Trained models, newest first; a new one is activated only when at least as good on the same held-out rows</caption>
      <thead><tr><th scope="col">Version</th><th scope="col">Trained</th><th scope="col">Samples</th><th scope="col">Comparison</th><th scope="col">State</th></tr></thead>
      <tbody>${models.map((m) => html`<tr data-version=${m.version}>
        <th scope="row" class="mono">${m.version}</th><td>${at(m.trainedAt)}</td><td>${number(m.trainingSamples)}</td>
        <td class="pre">${m.metrics?.comparison?.reason ?? "–"}</td>
        <td>${m.active ? html`<strong>active</strong>` : admin ? html`<${Activate} version=${m.version} onActivated=${onChanged} />` : "inactive"}</td>
      </tr>`)}</tbody>
    </table>
  </section>`;
}
