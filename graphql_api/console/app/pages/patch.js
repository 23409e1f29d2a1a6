// One patch: the evidence (diff, CVSS vector, wargaming, the ML prediction and what pushed it), the approvals, the
// discussion and the audit trail, and the decisions the signed-in roles allow. Kept current by the app's event
// stream: any event on this patch reads it again.
import { Age, Confidence, Flags, Priority, Severity, Sla, Status, Wargaming } from "../components/badges.js";
import { ShapChart } from "../components/charts.js";
import { CvssVector } from "../components/cvss.js";
import { DecisionDialog } from "../components/decision.js";
import { Diff } from "../components/diff.js";
import { toast } from "../components/toasts.js";
import { gql } from "../lib/api.js";
import { ADD_COMMENT, PATCH } from "../lib/documents.js";
import { ago, at, duration, percent, words } from "../lib/format.js";
import { useQuery, useThrottled } from "../lib/hooks.js";
import { onEvent } from "../lib/live.js";
import { allowed } from "../lib/roles.js";
import { Link } from "../lib/router.js";
import { html, useEffect, useState } from "../lib/ui.js";

function Card({ title, children, id, className = "" }) {
  return html`<section class=${`card ${className}`} aria-labelledby=${id}>
    <h2 id=${id}>${title}</h2>
    ${children}
  </section>`;
}

function Decisions({ patch, roles, onDecide }) {
  const can = allowed(roles, patch);
  const any = can.approve || can.reject || can.escalate || can.cancel;
  let note = null;
  if (!any && (patch.status === "PENDING" || patch.status === "ESCALATED")) {
    note = roles.includes("VIEWER") && roles.length === 1
      ? "You can read this patch; deciding needs a REVIEWER, LEAD or ADMIN role."
      : "This patch needs a LEAD or ADMIN: it requires escalation or is escalated.";
  } else if (!any) {
    note = `Decided: ${words(patch.status)}${patch.decidedBy ? ` by ${patch.decidedBy}` : ""}${patch.decidedAt ? `, ${at(patch.decidedAt)}` : ""}.`;
  }
  return html`<div class="decisions" role="group" aria-label="Decisions">
    ${can.approve ? html`<button type="button" class="primary" onClick=${() => onDecide("approve")}>Approve</button>` : null}
    ${can.reject ? html`<button type="button" class="danger" onClick=${() => onDecide("reject")}>Reject</button>` : null}
    ${can.escalate ? html`<button type="button" onClick=${() => onDecide("escalate")}>Escalate</button>` : null}
    ${can.cancel ? html`<button type="button" onClick=${() => onDecide("cancel")}>Cancel patch</button>` : null}
    ${note ? html`<p class="muted note">${note}</p>` : null}
  </div>`;
}

function Prediction({ prediction, threshold, agreement }) {
  if (!prediction) return html`<p class="muted">No prediction yet (no active model when it was submitted, and none from upstream).</p>`;
  return html`
    <dl class="facts">
      <div><dt>Prediction</dt><dd><${Confidence} prediction=${prediction} /></dd></div>
      <div><dt>Auto-approval threshold</dt><dd>${threshold !== undefined ? percent(threshold, 1) : "–"}</dd></div>
      <div><dt>Model</dt><dd class="mono">${prediction.modelVersion}</dd></div>
      <div><dt>Agrees with wargaming</dt><dd>${agreement === null ? "–" : agreement ? "yes" : html`<strong class="warn">no</strong>`}</dd></div>
    </dl>
    ${prediction.shapValues.length ? html`<${ShapChart} contributions=${prediction.shapValues} />` : html`<p class="muted">No SHAP values.</p>`}`;
}

function WargamingDetail({ result }) {
  if (!result) return html`<p class="muted">No wargaming result yet.</p>`;
  const phase = (ok, what) => html`<li class=${ok ? "ok" : "bad"}><span aria-hidden="true">${ok ? "✓" : "✗"}</span> ${what}: <strong>${ok ? "yes" : "no"}</strong></li>`;
  return html`<ul class="phases">
      ${phase(result.phase1Success, "Phase 1 — exploit reproduced on the vulnerable version")}
      ${phase(result.phase2Success, "Phase 2 — exploit blocked on the patched version")}
      ${phase(result.validationPassed, "Validation passed")}
    </ul>
    <dl class="facts">
      <div><dt>Run time</dt><dd>${duration(result.executionTimeMs / 1000)} (${result.executionTimeMs.toLocaleString("en-GB")} ms)</dd></div>
      <div><dt>Exploit</dt><dd class="mono">${result.exploitId ?? "–"}</dd></div>
    </dl>
    ${result.errorMessage ? html`<p class="problem-text"><strong>Error:</strong> <span class="pre">${result.errorMessage}</span></p>` : null}`;
}

function Comments({ patch, canComment, onChanged }) {
  const [replyTo, setReplyTo] = useState(null);
  const children = (parentId) => patch.comments.filter((c) => (c.parentId ?? null) === parentId);
  const thread = (parentId, depth) => children(parentId).map((comment) => html`<li key=${comment.id}>
    <article class="comment" aria-label=${`Comment by ${comment.author}`}>
      <header><strong>${comment.author}</strong> <time datetime=${comment.createdAt} title=${at(comment.createdAt)}>${ago(comment.createdAt)}</time></header>
      <p class="pre">${comment.body}</p>
      ${canComment ? html`<button type="button" class="link small" onClick=${() => setReplyTo(comment.id)}>Reply</button>` : null}
      ${replyTo === comment.id ? html`<${CommentForm} patch=${patch} parentId=${comment.id} label=${`Reply to ${comment.author}`}
          onDone=${() => { setReplyTo(null); onChanged(); }} onCancel=${() => setReplyTo(null)} />` : null}
    </article>
    ${children(comment.id).length && depth < 6 ? html`<ul class="thread">${thread(comment.id, depth + 1)}</ul>` : null}
  </li>`);
  return html`
    ${patch.comments.length ? html`<ul class="thread root">${thread(null, 0)}</ul>` : html`<p class="muted">No comments yet.</p>`}
    ${canComment ? html`<${CommentForm} patch=${patch} label="Add a comment" onDone=${onChanged} />` : null}`;
}

function CommentForm({ patch, parentId = null, label, onDone, onCancel }) {
  const [body, setBody] = useState("");
  const [problem, setProblem] = useState(null);
  const [busy, setBusy] = useState(false);
  const send = async (event) => {
    event.preventDefault();
    if (!body.trim()) {
      setProblem("Write something first.");
      return;
    }
    setBusy(true);
    try {
      await gql(ADD_COMMENT, { id: patch.id, body, parentId });
      setBody("");
      setProblem(null);
      onDone();
    } catch (error) {
      setProblem(error.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="comment-form" onSubmit=${send}>
    <label class="field"><span>${label}</span>
      <textarea rows="3" value=${body} onInput=${(e) => setBody(e.currentTarget.value)}></textarea></label>
    <p class="problem" role="alert">${problem}</p>
    <div class="row">
      <button type="submit" disabled=${busy}>${parentId ? "Reply" : "Comment"}</button>
      ${onCancel ? html`<button type="button" class="link" onClick=${onCancel}>Cancel</button>` : null}
    </div>
  </form>`;
}

function Details({ details }) {
  const entries = Object.entries(details ?? {}).filter(([, value]) => value !== null && value !== "");
  if (!entries.length) return "–";
  return html`<dl class="details">${entries.map(([key, value]) => html`<div><dt>${key}</dt><dd class="pre">${typeof value === "object" ? JSON.stringify(value) : String(value)}</dd></div>`)}</dl>`;
}

function AuditTrail({ entries }) {
  return html`<div class="table-wrap"><table class="data audit">
    <caption class="sr-only">Audit trail, oldest first</caption>
    <thead><tr><th scope="col">Seq</th><th scope="col">Action</th><th scope="col">Actor</th><th scope="col">At</th><th scope="col">Details</th><th scope="col">From</th><th scope="col">Hash</th></tr></thead>
    <tbody>${entries.map((e) => html`<tr key=${e.seq}>
      <td class="mono" data-label="Seq">${e.seq}</td><td data-label="Action"><span class="action">${words(e.action)}</span></td>
      <td data-label="Actor">${e.actor}</td><td data-label="At"><time datetime=${e.at}>${at(e.at)}</time></td>
      <td class="details-cell" data-label="Details"><${Details} details=${e.details} /></td>
      <td class="small" data-label="From">${e.ipAddress ?? "–"}</td><td class="mono small" data-label="Hash" title=${e.hash}>${e.hash.slice(0, 10)}…</td>
    </tr>`)}</tbody>
  </table></div>`;
}

export function PatchPage({ params, viewer }) {
  const { data, error, loading, refetch } = useQuery(PATCH, { id: params.id });
  const [dialog, setDialog] = useState(null);
  const [changed, setChanged] = useState(null);
  const reread = useThrottled(refetch, 200);
  useEffect(() => onEvent((event) => {
    if (event.patch.id !== params.id) return;
    setChanged({ kind: event.kind, actor: event.actor, at: event.at });
    reread();
  }), [params.id]);

  const patch = data?.patch;
  useEffect(() => { if (patch) document.title = `${patch.patchId} · HITL reviewer console`; }, [patch?.patchId]);
  if (!patch) {
    return html`<section class="page"><p><${Link} to="">← Queue<//></p>
      <h1 tabindex="-1">Patch</h1>
      ${error ? html`<p class="problem" role="alert">${error.message}</p>` : loading ? html`<p>Loading…</p>` : html`<p role="alert">No patch with this id.</p>`}
    </section>`;
  }
  return html`<section class="page patch">
    <p class="crumbs"><${Link} to="">← Queue<//></p>
    <header class="page-head patch-head">
      <div>
        <h1 tabindex="-1">${patch.patchId}</h1>
        <p class="subtitle"><span class="pkg">${patch.packageName}</span> ${patch.currentVersion} → ${patch.targetVersion}
          <span class="flag">${patch.versionBump.toLowerCase()} bump</span> · <span class="mono">${patch.cveId ?? "no CVE"}</span>${" "}
          · submitted <${Age} iso=${patch.createdAt} /> · version ${patch.version}</p>
        <p class="badges"><${Priority} value=${patch.priority} /> <${Status} value=${patch.status} /> <${Severity} value=${patch.severity} score=${patch.cvssScore} long />
          <${Sla} patch=${patch} /> <${Flags} patch=${patch} /></p>
      </div>
      <${Decisions} patch=${patch} roles=${viewer.roles} onDecide=${setDialog} />
    </header>
    ${changed ? html`<p class="notice" role="status">Updated <${Age} iso=${changed.at} />: ${words(changed.kind)} by ${changed.actor}.</p>` : null}
    ${patch.reason || patch.comment ? html`<p class="notice">${patch.reason ? html`<strong>Reason:</strong> <span class="pre">${patch.reason}</span> ` : null}
      ${patch.comment ? html`<strong>Comment:</strong> <span class="pre">${patch.comment}</span>` : null}</p>` : null}
    <div class="columns">
      <div class="main-column">
        <${Card} title="Diff" id="diff">${patch.diff ? html`<${Diff} text=${patch.diff} />` : html`<p class="muted">No diff was submitted (${patch.patchSizeLines} lines changed).</p>`}<//>
        <${Card} title=${`Approvals (${patch.approvals.length} of ${patch.requiredApprovals})`} id="approvals">
          ${patch.approvals.length
            ? html`<ul class="plain">${patch.approvals.map((a) => html`<li><strong>${a.approver}</strong> · ${at(a.at)}${a.comment ? html` — <span class="pre">${a.comment}</span>` : null}</li>`)}</ul>`
            : html`<p class="muted">No approvals yet.</p>`}
        <//>
        <${Card} title=${`Discussion (${patch.comments.length})`} id="discussion">
          <${Comments} patch=${patch} canComment=${allowed(viewer.roles, patch).comment} onChanged=${refetch} />
        <//>
        <${Card} title="Audit trail" id="audit"><${AuditTrail} entries=${patch.auditTrail} /><//>
      </div>
      <div class="side-column">
        <${Card} title="ML prediction" id="ml"><${Prediction} prediction=${patch.mlPrediction} threshold=${data.autoApprovalState?.threshold} agreement=${patch.mlWargamingAgreement} /><//>
        <${Card} title="Wargaming" id="wargaming"><${Wargaming} result=${patch.wargaming} /><${WargamingDetail} result=${patch.wargaming} /><//>
        <${Card} title=${`CVSS ${patch.cvssScore !== null ? patch.cvssScore.toFixed(1) : ""}`} id="cvss">
          ${patch.cvssVector ? html`<${CvssVector} vector=${patch.cvssVector} />` : html`<p class="muted">No vector (severity ${patch.severity.toLowerCase()} given directly).</p>`}
        <//>
        <${Card} title="Details" id="details">
          <dl class="facts">
            <div><dt>APV</dt><dd class="mono">${patch.apvId}</dd></div>
            <div><dt>CWE</dt><dd>${patch.cweIds.length ? patch.cweIds.join(", ") : "–"}</dd></div>
            <div><dt>Affected systems</dt><dd>${patch.affectedSystems.length ? patch.affectedSystems.join(", ") : "–"}</dd></div>
            <div><dt>Patch size</dt><dd>${patch.patchSizeLines} lines</dd></div>
            <div><dt>Auto-approval eligible</dt><dd>${patch.autoApprovalEligible ? "yes" : "no"}</dd></div>
            <div><dt>Deployment outcome</dt><dd>${patch.deploymentOutcome === null ? "not reported" : patch.deploymentOutcome ? "worked" : "failed"}</dd></div>
            <div><dt>Updated</dt><dd>${at(patch.updatedAt)}</dd></div>
          </dl>
        <//>
      </div>
    </div>
    ${dialog
      ? html`<${DecisionDialog} kind=${dialog} patch=${patch}
          onClose=${(stale) => { setDialog(null); if (stale) refetch(); }}
          onDone=${(message) => { setDialog(null); toast(message, "success"); refetch(); }} />`
      : null}
  </section>`;
}
