// A decision on a whole patch group: the dialog lists every pending member and, before the click, what will be
// applied and what will be skipped (and why) under the signed-in reviewer's roles. It sends the member ids it
// showed (expectedMemberIds): if the group changed meanwhile the service applies nothing and the dialog says so.
import { Dialog } from "./dialog.js";
import { Priority, Status } from "./badges.js";
import { ApiError, gql } from "../lib/api.js";
import { DECIDE_GROUP, GROUP } from "../lib/documents.js";
import { useQuery } from "../lib/hooks.js";
import { groupSkip } from "../lib/roles.js";
import { html, useRef, useState } from "../lib/ui.js";

const MEMBERS = 500;
const submitterOf = (patch) => patch.auditTrail.find((entry) => entry.action === "SUBMITTED")?.actor ?? null;

function outcome(viewer, patch, decision) {
  const skip = groupSkip(viewer, patch, decision, submitterOf(patch));
  if (skip) return html`<span class="skip-note">skipped (${skip.code}): ${skip.why}</span>`;
  if (decision === "APPROVE" && (patch.approvals?.length ?? 0) + 1 < patch.requiredApprovals) {
    return html`<span>approval ${(patch.approvals?.length ?? 0) + 1} of ${patch.requiredApprovals}</span>`;
  }
  return html`<span>${decision === "APPROVE" ? "approved" : "rejected"}</span>`;
}

export function GroupDecisionDialog({ group, viewer, onClose, onDone }) {
  const { data, error, loading } = useQuery(GROUP, { key: group.key, first: MEMBERS });
  const [decision, setDecision] = useState("APPROVE");
  const [reason, setReason] = useState("");
  const [comment, setComment] = useState("");
  const [problem, setProblem] = useState(null);
  const [busy, setBusy] = useState(false);
  const reasonRef = useRef(null);
  const members = data?.patchGroup?.members.edges.map((edge) => edge.node) ?? [];
  const complete = data?.patchGroup && data.patchGroup.members.totalCount === members.length;
  const skipped = members.filter((patch) => groupSkip(viewer, patch, decision, submitterOf(patch)));

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
      const variables = { key: group.key, decision, comment: comment.trim() || null, expected: members.map((patch) => patch.id) };
      if (decision === "REJECT") variables.reason = reason.trim();
      const result = (await gql(DECIDE_GROUP, variables)).decideGroup;
      onDone(`${group.packageName} ${group.targetVersion}: ${result.applied.length} decided, ${result.skipped.length} skipped`);
    } catch (failure) {
      const changed = failure instanceof ApiError && failure.code === "CONFLICT";
      setProblem(changed ? `Not applied: ${failure.message}. Close and open the group again to see its members now.` : failure.message);
    } finally {
      setBusy(false);
    }
  };

  const title = `Decide the group ${group.packageName} → ${group.targetVersion}`;
  return html`<${Dialog} title=${title} onClose=${onClose} wide=${true}>
    <form class="dialog-body group-decision" onSubmit=${submit} noValidate>
      <p class="muted">${group.cveId ?? "No CVE"} · ${group.pendingCount} pending of ${group.size}. Each member is decided on its own
        (its own audit entry); members you may not decide are skipped. If the group changes before you confirm, nothing is applied.</p>
      <fieldset class="checks"><legend>Decision</legend>
        ${["APPROVE", "REJECT"].map((value) => html`<label class="check">
          <input type="radio" name="group-decision" value=${value} checked=${decision === value} onChange=${() => setDecision(value)} />
          ${value === "APPROVE" ? "Approve" : "Reject"}</label>`)}
      </fieldset>
      ${loading && !data ? html`<p>Loading the members…</p>` : null}
      ${error ? html`<p class="problem" role="alert">${error.message}</p>` : null}
      ${data && !complete ? html`<p class="problem" role="alert">The group has more than ${MEMBERS} pending members: decide it in parts.</p>` : null}
      ${members.length
        ? html`<p class="group-summary"><strong>${members.length - skipped.length}</strong> will be ${decision === "APPROVE" ? "approved" : "rejected"}, <strong>${skipped.length}</strong> skipped.</p>
          <div class="table-wrap group-members"><table class="data compact">
            <caption class="sr-only">Pending members and what this decision does to each</caption>
            <thead><tr><th scope="col">Patch</th><th scope="col">Priority</th><th scope="col">Status</th><th scope="col">This decision</th></tr></thead>
            <tbody>${members.map((patch) => html`<tr class=${groupSkip(viewer, patch, decision, submitterOf(patch)) ? "skipped" : ""}>
              <th scope="row">${patch.patchId}</th><td><${Priority} value=${patch.priority} /></td><td><${Status} value=${patch.status} /></td>
              <td>${outcome(viewer, patch, decision)}</td></tr>`)}</tbody>
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
        <button type="submit" class=${decision === "APPROVE" ? "primary" : "danger"} disabled=${busy || !complete || members.length === skipped.length}>
          ${busy ? "Sending…" : `${decision === "APPROVE" ? "Approve" : "Reject"} ${members.length - skipped.length}`}</button>
      </footer>
    </form>
  <//>`;
}
