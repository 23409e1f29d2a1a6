// Decisions on a patch: approve (optional comment), reject (reason required), escalate (reason), cancel (reason).
// Each is sent with the version the reviewer saw (expectedVersion), taken when the dialog opens: if the patch
// changed since (new evidence, another reviewer's decision), the service answers CONFLICT and the dialog shows
// what changed and the new state instead of applying the decision to evidence nobody looked at.
import { Dialog } from "./dialog.js";
import { Status } from "./badges.js";
import { ApiError, gql } from "../lib/api.js";
import { APPROVE, CANCEL, ESCALATE, PATCH, REJECT } from "../lib/documents.js";
import { percent } from "../lib/format.js";
import { html, useRef, useState } from "../lib/ui.js";

const KINDS = {
  approve: { title: "Approve", mutation: APPROVE, field: "approvePatch", reason: false, confirm: "Approve" },
  reject: { title: "Reject", mutation: REJECT, field: "rejectPatch", reason: true, comment: true, confirm: "Reject" },
  escalate: { title: "Escalate", mutation: ESCALATE, field: "escalatePatch", reason: true, confirm: "Escalate to a lead" },
  cancel: { title: "Cancel", mutation: CANCEL, field: "cancelPatch", reason: true, confirm: "Cancel the patch" },
};

function doneMessage(kind, patch, result) {
  if (kind === "approve" && result.status !== "APPROVED") {
    return `Approval recorded for ${patch.patchId}: ${result.approvals.length} of ${result.requiredApprovals}`;
  }
  return `${patch.patchId} is now ${result.status.replace("_", " ").toLowerCase()}`;
}

// What a reviewer needs to see of a change: field, what they saw, what it is now.
function changes(before, now) {
  const rows = [];
  const add = (label, a, b) => (a ?? null) !== (b ?? null) && rows.push([label, a ?? "–", b ?? "–"]);
  add("Status", before.status, now.status);
  add("Version", String(before.version), String(now.version));
  add("Approvals", String(before.approvals?.length ?? 0), String(now.approvals?.length ?? 0));
  add("Decided by", before.decidedBy, now.decidedBy);
  add("Reason", before.reason, now.reason);
  add("Wargaming", before.wargaming ? (before.wargaming.validationPassed ? "passed" : "failed") : null, now.wargaming ? (now.wargaming.validationPassed ? "passed" : "failed") : null);
  add("ML confidence", before.mlPrediction ? percent(before.mlPrediction.confidence, 1) : null, now.mlPrediction ? percent(now.mlPrediction.confidence, 1) : null);
  add("Requires escalation", before.requiresEscalation ? "yes" : "no", now.requiresEscalation ? "yes" : "no");
  return rows;
}

export function DecisionDialog({ kind, patch, onClose, onDone }) {
  const spec = KINDS[kind];
  const seen = useRef(patch); // the state the reviewer decided on
  const [reason, setReason] = useState("");
  const [comment, setComment] = useState("");
  const [problem, setProblem] = useState(null);
  const [conflict, setConflict] = useState(null);
  const [busy, setBusy] = useState(false);
  const reasonRef = useRef(null);

  const submit = async (event) => {
    event.preventDefault();
    if (spec.reason && !reason.trim()) {
      setProblem(`A reason is required to ${spec.title.toLowerCase()} a patch.`);
      reasonRef.current?.focus();
      return;
    }
    setBusy(true);
    setProblem(null);
    const variables = { id: patch.id, expectedVersion: seen.current.version };
    if (spec.reason) variables.reason = reason.trim();
    if (kind === "approve" || spec.comment) variables.comment = comment.trim() || null;
    try {
      const data = await gql(spec.mutation, variables);
      onDone(doneMessage(kind, patch, data[spec.field]));
    } catch (error) {
      if (error instanceof ApiError && error.code === "CONFLICT") {
        const fresh = await gql(PATCH, { id: patch.id }).catch(() => null);
        setConflict({ message: error.message, now: fresh?.patch ?? null, extensions: error.extensions });
      } else {
        setProblem(error.message);
      }
    } finally {
      setBusy(false);
    }
  };

  if (conflict) {
    const now = conflict.now;
    const rows = now ? changes(seen.current, now) : [];
    return html`<${Dialog} title=${`${spec.title}: not applied`} onClose=${() => onClose(true)}>
      <div class="dialog-body conflict" role="alert">
        <p><strong>${patch.patchId} changed since you opened it</strong>, so your decision was not applied.</p>
        <p class="muted">${conflict.message}</p>
        <p>You saw version ${seen.current.version} (${seen.current.status}); it is now version ${conflict.extensions.currentVersion ?? now?.version}
          (<${Status} value=${conflict.extensions.currentStatus ?? now?.status ?? "PENDING"} />).</p>
        ${rows.length
          ? html`<table class="data compact"><caption>What changed</caption>
              <thead><tr><th scope="col"></th><th scope="col">You saw</th><th scope="col">Now</th></tr></thead>
              <tbody>${rows.map(([label, a, b]) => html`<tr><th scope="row">${label}</th><td>${a}</td><td><strong>${b}</strong></td></tr>`)}</tbody>
            </table>`
          : null}
      </div>
      <footer class="dialog-foot"><button type="button" class="primary" onClick=${() => onClose(true)}>Review the new state</button></footer>
    <//>`;
  }

  return html`<${Dialog} title=${`${spec.title} ${patch.patchId}`} onClose=${() => onClose(false)}>
    <form class="dialog-body" onSubmit=${submit} noValidate>
      <p class="muted">${patch.packageName} ${patch.currentVersion} → ${patch.targetVersion}. You are deciding on version ${seen.current.version}; if the patch changes before you confirm, nothing is applied.</p>
      ${spec.reason
        ? html`<label class="field">
            <span>Reason <span class="required">(required)</span></span>
            <textarea ref=${reasonRef} name="reason" rows="3" value=${reason} aria-invalid=${problem && !reason.trim() ? "true" : "false"}
              aria-describedby="decision-problem" onInput=${(e) => setReason(e.currentTarget.value)}></textarea>
          </label>`
        : null}
      ${kind === "approve" || spec.comment
        ? html`<label class="field">
            <span>Comment <span class="muted">(optional)</span></span>
            <textarea name="comment" rows="3" value=${comment} onInput=${(e) => setComment(e.currentTarget.value)}></textarea>
          </label>`
        : null}
      <p id="decision-problem" class="problem" role="alert">${problem}</p>
      <footer class="dialog-foot">
        <button type="button" onClick=${() => onClose(false)}>Back</button>
        <button type="submit" class=${kind === "approve" ? "primary" : "danger"} disabled=${busy}>${busy ? "Sending…" : spec.confirm}</button>
      </footer>
    </form>
  <//>`;
}
