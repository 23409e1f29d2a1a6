// The queue grouped by fix: pending patches with the same CVE (or none), package and target version, most urgent
// group first, live from the pendingGroups subscription. A reviewer decides a whole group in one dialog that shows,
// before the click, which members will be decided and which skipped.
import { Age, Priority } from "../components/badges.js";
import { GroupDecisionDialog } from "../components/groupdecision.js";
import { LiveNote } from "../components/livenote.js";
import { toast } from "../components/toasts.js";
import { GROUPS } from "../lib/documents.js";
import { useSubscription } from "../lib/hooks.js";
import { can } from "../lib/roles.js";
import { Link } from "../lib/router.js";
import { html, useState } from "../lib/ui.js";

const FIRST = 100;

export function GroupsPage({ viewer }) {
  const live = useSubscription(GROUPS, { first: FIRST });
  const [open, setOpen] = useState(null);
  const page = live.data?.pendingGroups;
  const decider = can(viewer.roles, "decide");
  return html`<section class="page groups">
    <header class="page-head">
      <h1 tabindex="-1">Pending groups</h1>
      <${LiveNote} receivedAt=${live.receivedAt} />
    </header>
    <p class="muted">One fix across many services: the pending patches with the same CVE, package and target version.
      ${page ? ` ${page.totalCount} group${page.totalCount === 1 ? "" : "s"}${page.totalCount > FIRST ? `, the first ${FIRST} shown` : ""}.` : ""}</p>
    ${live.error ? html`<p class="problem" role="alert">${live.error.message ?? live.error.map?.((e) => e.message).join("; ")}</p>` : null}
    <div class="table-wrap">
      <table class="queue-table groups-table">
        <caption class="sr-only">Patch groups in queue order of their most urgent member</caption>
        <thead><tr><th scope="col">Priority</th><th scope="col">Fix</th><th scope="col">CVE</th><th scope="col">Pending</th>
          <th scope="col">Needs a lead</th><th scope="col">Oldest</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
        <tbody>
          ${!page
            ? html`<tr><td colspan="7" class="empty">Loading the groups…</td></tr>`
            : page.items.length === 0
              ? html`<tr><td colspan="7" class="empty">No pending groups.</td></tr>`
              : page.items.map((group) => html`<tr key=${group.key}>
                  <td data-label="Priority"><${Priority} value=${group.highestPriority} /></td>
                  <td class="patch-cell"><strong>${group.packageName}</strong> → ${group.targetVersion}</td>
                  <td data-label="CVE">${group.cveId ? html`<${Link} to=${`?cve=${encodeURIComponent(group.cveId)}`} title="Show its patches in the queue">${group.cveId}<//>` : html`<span class="muted">none</span>`}</td>
                  <td data-label="Pending">${group.pendingCount} of ${group.size}</td>
                  <td data-label="Needs a lead">${group.requiresEscalationCount || ""}</td>
                  <td data-label="Oldest">${group.oldestPendingAt ? html`<${Age} iso=${group.oldestPendingAt} />` : ""}</td>
                  <td class="actions">${decider ? html`<button type="button" class="small" onClick=${() => setOpen(group)}
                    aria-label=${`Decide the group ${group.packageName} ${group.targetVersion}`}>Decide group…</button>` : null}</td>
                </tr>`)}
        </tbody>
      </table>
    </div>
    ${open
      ? html`<${GroupDecisionDialog} group=${open} onClose=${() => setOpen(null)}
          onDone=${(message) => { setOpen(null); toast(message, "success"); }} />`
      : null}
  </section>`;
}
