// Webhook endpoints (ADMIN): register one (its signing secret is shown once), enable or disable it, rotate its
// secret, delete it, and read its delivery log, where a delivery can be sent again.
import { toast } from "../components/toasts.js";
import { gql } from "../lib/api.js";
import { CREATE_WEBHOOK, DELETE_WEBHOOK, REDELIVER_WEBHOOK, ROTATE_WEBHOOK_SECRET, UPDATE_WEBHOOK, WEBHOOK_DELIVERIES, WEBHOOKS } from "../lib/documents.js";
import { at, number } from "../lib/format.js";
import { useQuery } from "../lib/hooks.js";
import { can } from "../lib/roles.js";
import { html, useState } from "../lib/ui.js";

const PRIORITIES = ["", "CRITICAL", "HIGH", "MEDIUM", "LOW"];
const KINDS = ["SUBMITTED", "WARGAMING_RECORDED", "AUTO_APPROVED", "APPROVAL_RECORDED", "APPROVED", "REJECTED", "ESCALATED", "CANCELLED", "COMMENTED", "SLA_BREACHED", "OUTCOME_RECORDED"];

const inputOf = (endpoint, changes = {}) => ({
  url: endpoint.url, format: endpoint.format, kinds: endpoint.kinds, minPriority: endpoint.minPriority, enabled: endpoint.enabled,
  description: endpoint.description, ...changes,
});

function Secret({ secret, onDone }) {
  return html`<section class="card secret" aria-labelledby="webhook-secret" role="status">
    <h2 id="webhook-secret">Signing secret</h2>
    <p>Copy it now: it is shown only this once. Receivers verify <code>webhook-signature</code> with it (Standard Webhooks).</p>
    <p><code class="mono" id="webhook-secret-value">${secret}</code></p>
    <button type="button" onClick=${onDone}>Done</button>
  </section>`;
}

function CreateForm({ onCreated }) {
  const [url, setUrl] = useState("");
  const [format, setFormat] = useState("CLOUDEVENTS");
  const [kinds, setKinds] = useState([]);
  const [minPriority, setMinPriority] = useState("");
  const [description, setDescription] = useState("");
  const [problem, setProblem] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    try {
      const input = { url: url.trim(), format, kinds: kinds.length ? kinds : null, minPriority: minPriority || null, description: description || null };
      const { createWebhook } = await gql(CREATE_WEBHOOK, { input });
      setUrl("");
      setProblem(null);
      toast(`Webhook ${createWebhook.endpoint.url} created`, "success");
      onCreated(createWebhook.secret);
    } catch (error) {
      setProblem(error.message);
    } finally {
      setBusy(false);
    }
  };
  const toggle = (kind) => setKinds(kinds.includes(kind) ? kinds.filter((k) => k !== kind) : [...kinds, kind]);
  return html`<form class="card" onSubmit=${submit} noValidate aria-labelledby="new-webhook">
    <h2 id="new-webhook">New endpoint</h2>
    <label class="field"><span>URL <span class="required">(required, https://)</span></span>
      <input type="url" name="url" value=${url} onInput=${(e) => setUrl(e.currentTarget.value)} /></label>
    <label class="field"><span>Format</span>
      <select name="format" value=${format} onChange=${(e) => setFormat(e.currentTarget.value)}>
        <option value="CLOUDEVENTS">CloudEvents</option><option value="SLACK">Slack</option></select></label>
    <label class="field"><span>Lowest priority</span>
      <select name="minPriority" value=${minPriority} onChange=${(e) => setMinPriority(e.currentTarget.value)}>
        ${PRIORITIES.map((p) => html`<option value=${p}>${p || "any"}</option>`)}</select></label>
    <fieldset class="field"><legend>Events (none ticked: all)</legend>
      ${KINDS.map((kind) => html`<label class="check"><input type="checkbox" checked=${kinds.includes(kind)} onChange=${() => toggle(kind)} /> ${kind}</label>`)}
    </fieldset>
    <label class="field"><span>Description</span>
      <input type="text" name="description" value=${description} onInput=${(e) => setDescription(e.currentTarget.value)} /></label>
    <p class="problem" role="alert">${problem}</p>
    <button type="submit" class="primary" disabled=${busy}>Create</button>
  </form>`;
}

function Deliveries({ endpoint }) {
  const [status, setStatus] = useState("");
  const { data, error, refetch } = useQuery(WEBHOOK_DELIVERIES, { id: endpoint.id, status: status || null });
  const again = async (delivery) => {
    try {
      await gql(REDELIVER_WEBHOOK, { id: delivery.id });
      toast(`Event ${delivery.eventSeq} will be sent again`, "success");
      refetch();
    } catch (problem) {
      toast(problem.message, "error");
    }
  };
  const page = data?.webhookDeliveries;
  return html`<section class="card" aria-labelledby="deliveries">
    <header class="page-head"><h2 id="deliveries">Deliveries to ${endpoint.url}</h2>
      <select aria-label="Status" value=${status} onChange=${(e) => setStatus(e.currentTarget.value)}>
        ${["", "PENDING", "RETRYING", "DELIVERED", "FAILED"].map((s) => html`<option value=${s}>${s || "any status"}</option>`)}</select>
      <button type="button" class="link" onClick=${refetch}>Refresh</button></header>
    ${error ? html`<p class="problem" role="alert">${error.message}</p>` : null}
    ${page ? html`<table class="data compact" id="delivery-log">
      <caption>${number(page.totalCount)} deliveries, newest first</caption>
      <thead><tr><th scope="col">Event</th><th scope="col">Kind</th><th scope="col">Status</th><th scope="col">Attempts</th>
        <th scope="col">Last answer</th><th scope="col">Next attempt</th><th scope="col">Delivered</th><th scope="col"></th></tr></thead>
      <tbody>${page.edges.map(({ node }) => html`<tr>
        <td class="mono">${node.eventSeq}</td><td>${node.kind}</td><td class=${`status-${node.status.toLowerCase()}`}>${node.status}</td>
        <td>${node.attempts}</td><td class="pre">${node.lastStatusCode ?? ""} ${node.lastError ?? ""}</td>
        <td>${node.nextAttemptAt ? at(node.nextAttemptAt) : "–"}</td><td>${node.deliveredAt ? at(node.deliveredAt) : "–"}</td>
        <td><button type="button" class="small" onClick=${() => again(node)}>Send again</button></td></tr>`)}</tbody>
    </table>` : html`<p>Loading…</p>`}
  </section>`;
}

export function WebhooksPage({ viewer }) {
  const admin = can(viewer.roles, "administer");
  const { data, error, refetch } = useQuery(WEBHOOKS, {}, "", { skip: !admin });
  const [secret, setSecret] = useState(null);
  const [open, setOpen] = useState(null);
  if (!admin) return html`<section class="page"><h1 tabindex="-1">Webhooks</h1><p class="muted">Only an ADMIN can manage webhooks.</p></section>`;
  const act = async (document, variables, done) => {
    try {
      const result = await gql(document, variables);
      done?.(result);
      refetch();
    } catch (problem) {
      toast(problem.message, "error");
    }
  };
  return html`<section class="page webhooks">
    <header class="page-head"><h1 tabindex="-1">Webhooks</h1><button type="button" class="link" onClick=${refetch}>Refresh</button></header>
    ${error ? html`<p class="problem" role="alert">${error.message}</p>` : null}
    ${secret ? html`<${Secret} secret=${secret} onDone=${() => setSecret(null)} />` : null}
    <div class="columns"><div class="main-column">
      ${data ? html`<table class="data" id="webhook-endpoints">
        <caption>Endpoints (events follow the audit log, in order, at least once)</caption>
        <thead><tr><th scope="col">URL</th><th scope="col">Format</th><th scope="col">Events</th><th scope="col">State</th>
          <th scope="col">Behind</th><th scope="col">Last delivered</th><th scope="col">Actions</th></tr></thead>
        <tbody>${data.webhookEndpoints.length === 0 ? html`<tr><td colspan="7" class="empty">No endpoints yet: add one with the form.</td></tr>` : null}
        ${data.webhookEndpoints.map((e) => html`<tr>
          <td class="pre"><button type="button" class="link" onClick=${() => setOpen(e)}>${e.url}</button>${e.description ? html`<br /><span class="muted small">${e.description}</span>` : null}</td>
          <td>${e.format}</td><td>${e.kinds ? e.kinds.join(", ") : "all"}${e.minPriority ? ` (${e.minPriority} and up)` : ""}</td>
          <td>${e.failing ? html`<strong class="status-failed">failing</strong>` : e.enabled ? "enabled" : "disabled"}</td>
          <td>${number(e.lagEvents)}</td><td class="mono">${e.lastDeliveredSeq ?? "–"}</td>
          <td class="actions">
            <button type="button" class="small" onClick=${() => act(UPDATE_WEBHOOK, { id: e.id, input: inputOf(e, { enabled: !e.enabled || e.failing }) })}>${e.enabled && !e.failing ? "Disable" : "Enable"}</button>
            <button type="button" class="small" onClick=${() => act(ROTATE_WEBHOOK_SECRET, { id: e.id }, (r) => setSecret(r.rotateWebhookSecret.secret))}>Rotate secret</button>
            <button type="button" class="small danger" onClick=${() => confirm(`Delete ${e.url} and its delivery log?`) && act(DELETE_WEBHOOK, { id: e.id }, () => setOpen(null))}>Delete</button>
          </td></tr>`)}</tbody>
      </table>` : html`<p>Loading…</p>`}
      ${open ? html`<${Deliveries} endpoint=${open} key=${open.id} />` : null}
    </div><div class="side-column"><${CreateForm} onCreated=${(s) => { setSecret(s); refetch(); }} /></div></div>
  </section>`;
}
