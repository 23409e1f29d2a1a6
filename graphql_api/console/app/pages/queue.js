// The live queue: the pendingQueue subscription drives the first page (no polling); counts per priority and SLA
// state are live too. Later pages are read with pendingPatches(after:) and read again whenever the live page or an
// event says the queue changed. Filters and the page size live in the address (shareable); keys: j/k or ↑/↓ move,
// Enter or o opens, a approves, r rejects, e escalates, / filters by package, ? lists them.
import { Age, Confidence, Flags, Priority, Severity, Sla, Status, Wargaming } from "../components/badges.js";
import { LiveNote } from "../components/livenote.js";
import { DecisionDialog } from "../components/decision.js";
import { Dialog } from "../components/dialog.js";
import { toast } from "../components/toasts.js";
import { gql } from "../lib/api.js";
import { QUEUE, QUEUE_COUNT, QUEUE_CURSOR, QUEUE_PAGE } from "../lib/documents.js";
import { useQuery, useSubscription, useThrottled } from "../lib/hooks.js";
import { onEvent } from "../lib/live.js";
import { allowed } from "../lib/roles.js";
import { Link, navigate, route, setQuery } from "../lib/router.js";
import { useStore } from "../lib/store.js";
import { html, useEffect, useMemo, useRef, useState } from "../lib/ui.js";

const LEVELS = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];
const SLA = ["OK", "AT_RISK", "BREACHED"];
const SIZES = [25, 50, 100, 200, 500];
const list = (value, known) => (value ? value.split(",").filter((v) => known.includes(v)) : []);

function filterFrom(query) {
  const filter = {};
  const priority = list(query.get("priority"), LEVELS);
  const severity = list(query.get("severity"), LEVELS);
  if (priority.length) filter.priority = priority;
  if (severity.length) filter.severity = severity;
  if (query.get("package")) filter.packageName = query.get("package");
  if (query.get("cve")) filter.cveId = query.get("cve");
  if (SLA.includes(query.get("sla"))) filter.slaStatus = query.get("sla");
  return Object.keys(filter).length ? filter : null;
}

function Counts() {
  const counts = LEVELS.map((level) => [level, useSubscription(QUEUE_COUNT, { filter: { priority: [level] } })]);
  const atRisk = useSubscription(QUEUE_COUNT, { filter: { slaStatus: "AT_RISK" } });
  const breached = useSubscription(QUEUE_COUNT, { filter: { slaStatus: "BREACHED" } });
  const total = (state) => state.data?.pendingQueue.totalCount ?? "…";
  return html`<ul class="counts" aria-label="Pending patches by priority and SLA">
    ${counts.map(([level, state]) => html`<li>
      <button type="button" class=${`count level-${level.toLowerCase()}`} onClick=${() => setQuery({ priority: level, sla: null, page: null })}>
        <span class="count-n">${total(state)}</span> <span class="count-label">${level}</span><span class="sr-only"> pending: show only these</span>
      </button></li>`)}
    <li><button type="button" class="count sla-at_risk" onClick=${() => setQuery({ sla: "AT_RISK", priority: null, page: null })}>
      <span class="count-n">${total(atRisk)}</span> <span class="count-label">SLA at risk</span><span class="sr-only">: show only these</span></button></li>
    <li><button type="button" class="count sla-breached" onClick=${() => setQuery({ sla: "BREACHED", priority: null, page: null })}>
      <span class="count-n">${total(breached)}</span> <span class="count-label">SLA breached</span><span class="sr-only">: show only these</span></button></li>
  </ul>`;
}

function Filters({ query }) {
  const toggle = (key, value) => {
    const current = list(query.get(key), LEVELS);
    setQuery({ [key]: current.includes(value) ? current.filter((v) => v !== value) : [...current, value], page: null });
  };
  const checks = (key, legend) => html`<fieldset class="checks">
    <legend>${legend}</legend>
    ${LEVELS.map((level) => html`<label class="check">
      <input type="checkbox" checked=${list(query.get(key), LEVELS).includes(level)} onChange=${() => toggle(key, level)} />${level.toLowerCase()}
    </label>`)}
  </fieldset>`;
  const text = (key, label, placeholder) => html`<label class="field inline">
    <span>${label}</span>
    <input type="search" id=${`filter-${key}`} value=${query.get(key) ?? ""} placeholder=${placeholder} spellcheck="false"
      onChange=${(e) => setQuery({ [key]: e.currentTarget.value.trim() || null, page: null })} />
  </label>`;
  return html`<form class="filters" role="search" aria-label="Filter the queue" onSubmit=${(e) => e.preventDefault()}>
    ${checks("priority", "Priority")}
    ${checks("severity", "Severity")}
    ${text("package", "Package", "exact name")}
    ${text("cve", "CVE", "CVE-2024-12345")}
    <label class="field inline"><span>SLA</span>
      <select value=${query.get("sla") ?? ""} onChange=${(e) => setQuery({ sla: e.currentTarget.value || null, page: null })}>
        <option value="">any</option>${SLA.map((s) => html`<option value=${s}>${s.replace("_", " ").toLowerCase()}</option>`)}
      </select>
    </label>
    <button type="button" class="link" onClick=${() => setQuery({ priority: null, severity: null, package: null, cve: null, sla: null, page: null })}>Clear filters</button>
  </form>`;
}

function Row({ patch, index, selected, roles, onSelect, onDecide }) {
  const can = allowed(roles, patch);
  return html`<tr class=${selected ? "selected" : ""} onClick=${() => onSelect(index)} data-patch-id=${patch.id}>
    <td data-label="Priority"><${Priority} value=${patch.priority} /></td>
    <td class="patch-cell">
      <${Link} to=${`patches/${encodeURIComponent(patch.id)}`} class="patch-link" id=${`row-${index}`}>${patch.patchId}<//>
      <div class="sub"><span class="pkg">${patch.packageName}</span> ${patch.currentVersion} → ${patch.targetVersion}
        ${patch.versionBump === "MAJOR" ? html`<span class="flag flag-major">major</span>` : null}</div>
    </td>
    <td data-label="CVE · severity"><div class="mono">${patch.cveId ?? "–"}</div><${Severity} value=${patch.severity} score=${patch.cvssScore} /></td>
    <td data-label="SLA"><${Sla} patch=${patch} /></td>
    <td data-label="ML confidence"><${Confidence} prediction=${patch.mlPrediction} /></td>
    <td data-label="Wargaming"><${Wargaming} result=${patch.wargaming} /></td>
    <td class="flags" data-label="Flags">${patch.status !== "PENDING" ? html`<${Status} value=${patch.status} />` : null}<${Flags} patch=${patch} /></td>
    <td class="age" data-label="Age"><${Age} iso=${patch.createdAt} /></td>
    <td class="actions">
      ${can.approve ? html`<button type="button" class="small primary" aria-label=${`Approve ${patch.patchId}`} onClick=${(e) => { e.stopPropagation(); onDecide("approve", patch); }}>Approve</button>` : null}
      ${can.reject ? html`<button type="button" class="small danger" aria-label=${`Reject ${patch.patchId}`} onClick=${(e) => { e.stopPropagation(); onDecide("reject", patch); }}>Reject</button>` : null}
    </td>
  </tr>`;
}

const SHORTCUTS = [["j or ↓", "next patch"], ["k or ↑", "previous patch"], ["Enter or o", "open the patch"], ["a", "approve"], ["r", "reject"], ["e", "escalate"], ["/", "filter by package"], ["?", "this list"]];

export function QueuePage({ viewer }) {
  const { query } = useStore(route);
  const filter = useMemo(() => filterFrom(query), [query.toString()]);
  const filterKey = JSON.stringify(filter);
  const size = SIZES.includes(Number(query.get("size"))) ? Number(query.get("size")) : 50;
  const [pages, setPages] = useState({ key: null, cursors: [null], page: 1 });
  const page = pages.key === `${filterKey}/${size}` ? pages.page : 1;
  const cursor = pages.key === `${filterKey}/${size}` ? pages.cursors[page - 1] : null;

  const live = useSubscription(QUEUE, { first: size, filter });
  const later = useQuery(QUEUE_PAGE, { first: size, after: cursor, filter }, `${filterKey}/${size}/${cursor}`, { skip: page === 1 });
  const asOf = live.data?.pendingQueue.asOfSeq;
  useEffect(() => { if (page > 1) later.refetch(); }, [asOf]);

  const items = page === 1 ? live.data?.pendingQueue.items ?? null : later.data?.pendingPatches.edges.map((edge) => edge.node) ?? null;
  const total = live.data?.pendingQueue.totalCount ?? later.data?.pendingPatches.totalCount ?? 0;
  const hasNext = page === 1 ? total > size : Boolean(later.data?.pendingPatches.pageInfo.hasNextPage);

  // A change to a patch shown on a later page (its page is read again).
  const refreshLater = useThrottled(() => later.refetch(), 300);
  useEffect(() => onEvent((event) => { if (page > 1 && items?.some((p) => p.id === event.patch.id)) refreshLater(); }), [page, items]);

  const next = async () => {
    const data = page === 1
      ? await gql(QUEUE_CURSOR, { first: size, after: null, filter })
      : later.data;
    const end = data?.pendingPatches.pageInfo.endCursor;
    if (!end) return;
    setPages({ key: `${filterKey}/${size}`, cursors: [...(pages.key === `${filterKey}/${size}` ? pages.cursors.slice(0, page) : [null]), end], page: page + 1 });
  };
  const previous = () => setPages({ ...pages, page: Math.max(1, page - 1) });

  const [selected, setSelected] = useState(0);
  const [dialog, setDialog] = useState(null);
  const [help, setHelp] = useState(false);
  const tableRef = useRef(null);
  const count = items?.length ?? 0;
  const current = items?.[Math.min(selected, count - 1)];

  const select = (index) => {
    const bounded = Math.max(0, Math.min(index, count - 1));
    setSelected(bounded);
    const link = tableRef.current?.querySelector(`#row-${bounded}`);
    link?.focus();
    link?.closest("tr")?.scrollIntoView({ block: "nearest" });
  };
  const decide = (kind, patch) => patch && allowed(viewer.roles, patch)[kind] && setDialog({ kind, patch });

  useEffect(() => {
    const onKey = (event) => {
      if (dialog || help || event.ctrlKey || event.metaKey || event.altKey || document.querySelector("dialog[open]")) return;
      if (event.target.closest?.("input, textarea, select, [contenteditable]")) return;
      const actions = {
        j: () => select(selected + 1), ArrowDown: () => select(selected + 1),
        k: () => select(selected - 1), ArrowUp: () => select(selected - 1),
        o: () => current && navigate(`patches/${encodeURIComponent(current.id)}`),
        a: () => decide("approve", current), r: () => decide("reject", current), e: () => decide("escalate", current),
        "/": () => document.getElementById("filter-package")?.focus(), "?": () => setHelp(true),
      };
      if (event.key === "Enter" && event.target === document.body && current) actions.o();
      const action = actions[event.key];
      if (!action) return;
      event.preventDefault();
      action();
    };
    document.addEventListener("keydown", onKey);
    return () => document.removeEventListener("keydown", onKey);
  });

  // User Timing marks (DevTools' Performance panel, tests/benchmarks/console.py): the first page's data has
  // arrived, and it is on screen.
  const marks = useRef({ data: false, rendered: false });
  if (items && !marks.current.data) {
    marks.current.data = true;
    performance.mark("hitl:queue-data", { detail: items.length });
  }
  useEffect(() => {
    if (items && !marks.current.rendered) {
      marks.current.rendered = true;
      performance.mark("hitl:queue-rendered", { detail: items.length });
    }
  }, [items]);

  const first = (page - 1) * size + 1;
  const error = live.error ?? later.error;
  return html`<section class="page queue">
    <header class="page-head">
      <h1 tabindex="-1">Pending queue</h1>
      <${LiveNote} receivedAt=${live.receivedAt} />
    </header>
    <${Counts} />
    <${Filters} query=${query} />
    ${error ? html`<p class="problem" role="alert">${error.message ?? error.map?.((e) => e.message).join("; ")}</p>` : null}
    <div class="table-wrap">
      <table class="queue-table" ref=${tableRef}>
        <caption class="sr-only">Pending patches in queue order (priority, then oldest first)</caption>
        <colgroup><col class="c-priority" /><col class="c-patch" /><col class="c-cve" /><col class="c-sla" /><col class="c-ml" />
          <col class="c-wg" /><col class="c-flags" /><col class="c-age" /><col class="c-actions" /></colgroup>
        <thead><tr>
          <th scope="col">Priority</th><th scope="col">Patch</th><th scope="col">CVE · severity</th><th scope="col">SLA</th>
          <th scope="col">ML confidence</th><th scope="col">Wargaming</th><th scope="col">Flags</th><th scope="col">Age</th>
          <th scope="col"><span class="sr-only">Actions</span></th>
        </tr></thead>
        <tbody>
          ${items === null
            ? html`<tr><td colspan="9" class="empty">Loading the queue…</td></tr>`
            : items.length === 0
              ? html`<tr><td colspan="9" class="empty">Nothing pending${filter ? " matches these filters" : ""}.</td></tr>`
              : items.map((patch, index) => html`<${Row} key=${patch.id} patch=${patch} index=${index} selected=${index === selected}
                  roles=${viewer.roles} onSelect=${setSelected} onDecide=${decide} />`)}
        </tbody>
      </table>
    </div>
    <nav class="pager" aria-label="Queue pages">
      <span>${total ? `${first}–${first + count - 1} of ${total}` : "0 of 0"}</span>
      <button type="button" onClick=${previous} disabled=${page === 1}>‹ Previous</button>
      <span>Page ${page}</span>
      <button type="button" onClick=${next} disabled=${!hasNext}>Next ›</button>
      <label class="field inline"><span>Per page</span>
        <select value=${String(size)} onChange=${(e) => setQuery({ size: e.currentTarget.value === "50" ? null : e.currentTarget.value })}>
          ${SIZES.map((n) => html`<option value=${String(n)}>${n}</option>`)}
        </select>
      </label>
      <button type="button" class="link" onClick=${() => setHelp(true)}>Keyboard shortcuts (?)</button>
    </nav>
    ${dialog
      ? html`<${DecisionDialog} kind=${dialog.kind} patch=${dialog.patch} onClose=${() => setDialog(null)}
          onDone=${(message) => { setDialog(null); toast(message, "success"); }} />`
      : null}
    ${help
      ? html`<${Dialog} title="Keyboard shortcuts" onClose=${() => setHelp(false)}>
          <dl class="shortcuts dialog-body">${SHORTCUTS.map(([key, what]) => html`<dt><kbd>${key}</kbd></dt><dd>${what}</dd>`)}</dl>
        <//>`
      : null}
  </section>`;
}
