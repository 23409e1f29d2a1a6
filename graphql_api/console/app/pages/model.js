// The active model (metrics against its baseline, calibration, what it relies on) and auto-approval: its state,
// the kill switch and training, which only an ADMIN may use.
import { CalibrationChart, HBarChart } from "../components/charts.js";
import { Dialog } from "../components/dialog.js";
import { Drift, Guard, Registry } from "../components/safety.js";
import { toast } from "../components/toasts.js";
import { gql } from "../lib/api.js";
import { MODEL, SET_PAUSED, TRAIN } from "../lib/documents.js";
import { at, feature, number, percent } from "../lib/format.js";
import { useQuery } from "../lib/hooks.js";
import { can } from "../lib/roles.js";
import { html, useState } from "../lib/ui.js";

const METRICS = [["auc", "AUC", 3], ["accuracy", "Accuracy", 3], ["logLoss", "Log loss", 3], ["brierScore", "Brier score", 3], ["expectedCalibrationError", "Calibration error (ECE)", 3]];
const fixed = (value, digits) => (value === null || value === undefined ? "–" : Number(value).toFixed(digits));

function KillSwitch({ state, admin, onChanged }) {
  const [open, setOpen] = useState(false);
  const [reason, setReason] = useState("");
  const [problem, setProblem] = useState(null);
  const [busy, setBusy] = useState(false);
  const pausing = !state.paused;
  const submit = async (event) => {
    event.preventDefault();
    if (!reason.trim()) {
      setProblem(`A reason is required to ${pausing ? "pause" : "resume"} auto-approval.`);
      return;
    }
    setBusy(true);
    try {
      await gql(SET_PAUSED, { paused: pausing, reason: reason.trim() });
      toast(`Auto-approval ${pausing ? "paused" : "resumed"}`, "success");
      setOpen(false);
      setReason("");
      setProblem(null);
      onChanged();
    } catch (error) {
      setProblem(error.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<section class="card" aria-labelledby="kill-switch">
    <h2 id="kill-switch">Auto-approval</h2>
    <p class=${`state ${state.autoApprovalEnabled ? "on" : "off"}`}>
      <strong>${state.paused ? "Paused" : state.autoApprovalEnabled ? "On" : "Off"}</strong>
      ${state.autoApprovalDisabledReason ? html` — <span class="pre">${state.autoApprovalDisabledReason}</span>` : null}
    </p>
    <dl class="facts">
      <div><dt>Threshold in force</dt><dd>${percent(state.threshold, 1)}</dd></div>
      <div><dt>Last changed</dt><dd>${state.changedBy ? html`${state.changedBy}, ${at(state.changedAt)}` : "never"}</dd></div>
      ${state.reason ? html`<div><dt>Reason</dt><dd class="pre">${state.reason}</dd></div>` : null}
    </dl>
    ${admin
      ? html`<button type="button" class=${pausing ? "danger" : "primary"} onClick=${() => setOpen(true)}>${pausing ? "Pause auto-approval" : "Resume auto-approval"}</button>`
      : html`<p class="muted">Only an ADMIN can pause or resume auto-approval.</p>`}
    <details class="policy"><summary>Policy</summary>
      <dl class="facts">${Object.entries(state.policy).map(([key, value]) => html`<div><dt>${key}</dt><dd class="mono">${JSON.stringify(value)}</dd></div>`)}</dl>
    </details>
    ${open
      ? html`<${Dialog} title=${pausing ? "Pause auto-approval" : "Resume auto-approval"} onClose=${() => setOpen(false)}>
          <form class="dialog-body" onSubmit=${submit} noValidate>
            <p>${pausing ? "While paused, nothing is auto-approved on any replica; every patch waits for a reviewer." : "Patches that meet the policy will be auto-approved again."} The change and its reason are audited.</p>
            <label class="field"><span>Reason <span class="required">(required)</span></span>
              <textarea rows="3" value=${reason} onInput=${(e) => setReason(e.currentTarget.value)}></textarea></label>
            <p class="problem" role="alert">${problem}</p>
            <footer class="dialog-foot"><button type="button" onClick=${() => setOpen(false)}>Back</button>
              <button type="submit" class=${pausing ? "danger" : "primary"} disabled=${busy}>${pausing ? "Pause" : "Resume"}</button></footer>
          </form>
        <//>`
      : null}
  </section>`;
}

function Train({ onTrained }) {
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState(null);
  const train = async () => {
    setBusy(true);
    setProblem(null);
    try {
      const { trainModel } = await gql(TRAIN);
      toast(trainModel.active
        ? `Model ${trainModel.version} trained on ${trainModel.trainingSamples} samples and activated`
        : `Model ${trainModel.version} trained but kept inactive: ${trainModel.metrics?.comparison?.reason ?? ""}`, trainModel.active ? "success" : "info");
      onTrained();
    } catch (error) {
      setProblem(error.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<div class="train">
    <button type="button" onClick=${train} disabled=${busy} aria-describedby="train-note">${busy ? "Training…" : "Train a new model now"}</button>
    <p id="train-note" class="muted small">Trains on the decision history and deployment outcomes; activates the result on every replica when it is at least as good as the active model on the same held-out rows.</p>
    <p class="problem" role="alert">${problem}</p>
  </div>`;
}

export function ModelPage({ viewer }) {
  const { data, error, refetch } = useQuery(MODEL, {});
  const admin = can(viewer.roles, "administer");
  const model = data?.mlModel;
  const metrics = model?.metrics ?? {};
  const splits = [["Validation", metrics.validation], ["Test", metrics.test], ["Baseline", metrics.baseline]];
  const auto = metrics.autoApproval ?? {};
  return html`<section class="page model">
    <header class="page-head"><h1 tabindex="-1">Model and auto-approval</h1>
      <button type="button" class="link" onClick=${refetch}>Refresh</button></header>
    ${error ? html`<p class="problem" role="alert">${error.message}</p>` : null}
    ${data ? html`<div class="columns">
      <div class="main-column">
        ${model
          ? html`<section class="card" aria-labelledby="active-model"><h2 id="active-model">Active model</h2>
              <dl class="facts">
                <div><dt>Version</dt><dd class="mono">${model.version}</dd></div>
                <div><dt>Trained</dt><dd>${at(model.trainedAt)}</dd></div>
                <div><dt>Samples</dt><dd>${number(model.trainingSamples)} (${number(metrics.labels?.fromDeploymentOutcome)} from deployments, ${number(metrics.labels?.fromHumanDecision)} from decisions)</dd></div>
                <div><dt>Threshold</dt><dd>${model.autoApprovalEnabled ? percent(model.threshold, 2) : html`off — <span class="pre">${model.autoApprovalDisabledReason}</span>`}</dd></div>
                <div><dt>At the threshold (validation)</dt><dd>precision ${percent(auto.precision, 1)}, recall ${percent(auto.recall, 1)}, coverage ${percent(auto.coverage, 1)}</dd></div>
                ${auto.test ? html`<div><dt>At the threshold (test)</dt><dd>precision ${percent(auto.test.precision, 1)}, recall ${percent(auto.test.recall, 1)}, coverage ${percent(auto.test.coverage, 1)}</dd></div>` : null}
              </dl>
              <table class="data compact">
                <caption>Metrics against a constant baseline</caption>
                <thead><tr><th scope="col">Metric</th>${splits.map(([name]) => html`<th scope="col">${name}</th>`)}</tr></thead>
                <tbody>${METRICS.map(([key, name, digits]) => html`<tr><th scope="row">${name}</th>${splits.map(([, split]) => html`<td>${fixed(split?.[key], digits)}</td>`)}</tr>`)}</tbody>
              </table>
            </section>
            ${metrics.test?.calibration ? html`<section class="card"><${CalibrationChart} bins=${metrics.test.calibration} caption="Calibration on the test split (dots on the diagonal: confidences mean what they say)" /></section>` : null}
            ${metrics.topFeaturesByGain?.length ? html`<section class="card"><${HBarChart} caption="What the model relies on most (gain)"
                data=${metrics.topFeaturesByGain.map((f) => ({ label: feature(f.feature), value: f.gain }))} /></section>` : null}
            <${Drift} drift=${model.drift} />`
          : html`<section class="card"><h2>No model yet</h2><p class="muted">Predictions come from upstream until a model is trained.</p></section>`}
        ${data.mlModels.length ? html`<${Registry} models=${data.mlModels} admin=${admin} onChanged=${refetch} />` : null}
      </div>
      <div class="side-column">
        <${KillSwitch} state=${data.autoApprovalState} admin=${admin} onChanged=${refetch} />
        <${Guard} guard=${data.autoApprovalState.guard} />
        ${admin ? html`<section class="card" aria-labelledby="training"><h2 id="training">Training</h2><${Train} onTrained=${refetch} /></section>` : null}
      </div>
    </div>` : html`<p>Loading…</p>`}
  </section>`;
}
