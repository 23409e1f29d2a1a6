// A decision on a whole patch group: before the click, the dialog shows what the service will do for the
// signed-in reviewer (groupDecisionPreview: the members it will decide, those it will skip and why, under the
// service's own rules). It sends the member ids it showed (expectedMemberIds): if the group changed meanwhile the
// service applies nothing, and the dialog shows the group as it is now.
import { Dialog } from "./dialog.js";
import { Priority, Status } from "./badges.js";
import { ApiError, gql } from "../lib/api.js";
import { DECIDE_GROUP, GROUP_PREVIEW } from "../lib/documents.js";
import { useQuery } from "../lib/hooks.js";
import { html, useRef, useState } from "../lib/ui.js";

function effect(patch, decision) {
  const approvals = (patch.approvals?.length ?? 0) + 1;
  if (decision === "APPROVE" && approvals < patch.requiredApprovals) return `approval ${approvals} of ${patch.requiredApprovals}`;
  return decision === "APPROVE" ? "approved" : "rejected";
}

const row = (patch, outcome, skipped) => html`<tr class=${skipped ? "skipped" : ""}>
  <th scope="row">${patch.patchId}</th><td><${Priority} value=${patch.priority} /></td><td><${Status} value=${patch.status} /></td>
  <td>${outcome}</td></tr>`;

export function GroupDecisionDialog({ group, onClose, onDone }) {
  const { data, error, loading, refetch } = useQuery(GROUP_PREVIEW, { key: group.key });
  const [decision, setDecision] = useState("APPROVE");
  const [reason, setReason] = useState("");
  const [comment, setComment] = useState("");
  const [problem, setProblem] = useState(null);
  const [busy, setBusy] = useState(false);
  const reasonRef = useRef(null);
  const preview = data?.[decision === "APPROVE" ? "approve" : "reject"];
  const applied = preview?.applied ?? [];
  const skipped = preview?.skipped ?? [];
  const verb = decision === "APPROVE" ? "approved" : "rejected";

  const submit = async (event) => {
    event.preventDefault();
    if (decision === "REJECT" && !reason.trim()) {
      setProblem("A reason is required to reject a group.");
      reasonRef.current?.focus();
      return;
    }
    setBusy(true);
    setProblem(null);
    try {
      const expected = [...applied.map((patch) => patch.id), ...skipped.map((skip) => skip.patch.id)];
      const variables = { key: group.key, decision, comment: comment.trim() || null, expected };
      if (decision === "REJECT") variables.reason = reason.trim();
      const result = (await gql(DECIDE_GROUP, variables)).decideGroup;
      onDone(`${group.packageName} ${group.targetVersion}: ${result.applied.length} decided, ${result.skipped.length} skipped`);
    } catch (failure) {
      const changed = failure instanceof ApiError && failure.code === "CONFLICT";
      setProblem(changed ? `Not applied: ${failure.message}. The list now shows the group as it is: check it and confirm again.` : failure.message);
      if (changed) refetch();
    } finally {
      setBusy(false);
    }
  };

  const title = `Decide the group ${group.packageName} → ${group.targetVersion}`;
  const counts = preview?.group ?? group;
  return html`<${Dialog} title=${title} onClose=${onClose} wide=${true}>
    <form class="dialog-body group-decision" onSubmit=${submit} noValidate>
      <p class="muted">${group.cveId ?? "No CVE"} · ${counts.pendingCount} pending of ${counts.size}. Each member is decided on its own
        (its own audit entry); members you may not decide are skipped. If the group changes before you confirm, nothing is applied.</p>
      <fieldset class="checks"><legend>Decision</legend>
        ${["APPROVE", "REJECT"].map((value) => html`<label class="check">
          <input type="radio" name="group-decision" value=${value} checked=${decision === value} onChange=${() => setDecision(value)} />
          ${value === "APPROVE" ? "Approve" : "Reject"}</label>`)}
      </fieldset>
      ${loading && !data ? html`<p>Loading the members…</p>` : null}
      ${error ? html`<p class="problem" role="alert">${error.message}</p>` : null}
      ${preview
        ? html`<p class="group-summary"><strong>${applied.length}</strong> will be ${verb}, <strong>${skipped.length}</strong> skipped.</p>
          <div class="table-wrap group-members"><table class="data compact">
            <caption class="sr-only">Pending members and what this decision does to each</caption>
            <thead><tr><th scope="col">Patch</th><th scope="col">Priority</th><th scope="col">Status</th><th scope="col">This decision</th></tr></thead>
            <tbody>${applied.map((patch) => row(patch, effect(patch, decision), false))}${skipped.map((skip) =>
              row(skip.patch, html`<span class="skip-note">skipped (${skip.code}): ${skip.message}</span>`, true))}</tbody>
          </table></div>`
        : null}
      ${decision === "REJECT"
        ? html`<label class="field"><span>Reason <span class="required">(required)</span></span>
            <textarea ref=${reasonRef} name="reason" rows="2" value=${reason} onInput=${(e) => setReason(e.currentTarget.value)}></textarea></label>`
        : null}
      <label class="field"><span>Comment <span class="muted">(optional)</span></span>
        <textarea name="comment" rows="2" value=${comment} onInput=${(e) => setComment(e.currentTarget.value)}></textarea></label>
      <p class="problem" role="alert">${problem}</p>
      <footer class="dialog-foot">
        <button type="button" onClick=${onClose}>Back</button>
        <button type="submit" class=${decision === "APPROVE" ? "primary" : "danger"} disabled=${busy || loading || !applied.length}>
          ${busy ? "Sending…" : `${decision === "APPROVE" ? "Approve" : "Reject"} ${applied.length}`}</button>
      </footer>
    </form>
  <//>`;
}
