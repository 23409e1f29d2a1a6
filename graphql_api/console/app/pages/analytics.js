// Analytics for leads: the summary, live (analyticsSummary subscription), and charts of a chosen window
// (analyticsBreakdown), read again when the live summary changes.
import { BarChart, GroupedBars, LineChart } from "../components/charts.js";
import { LiveNote } from "../components/livenote.js";
import { SUMMARY, BREAKDOWN } from "../lib/documents.js";
import { day, duration, number, percent, time } from "../lib/format.js";
import { useQuery, useSubscription, useThrottled } from "../lib/hooks.js";
import { route, setQuery } from "../lib/router.js";
import { useStore } from "../lib/store.js";
import { html, useEffect, useMemo } from "../lib/ui.js";

const WINDOWS = [
  ["1d", "Last 24 hours", 1, "HOUR"],
  ["7d", "Last 7 days", 7, "DAY"],
  ["30d", "Last 30 days", 30, "DAY"],
  ["90d", "Last 90 days", 90, "WEEK"],
  ["all", "All time", null, "WEEK"],
];
const BUCKETS = ["< 1 min", "1–5 min", "5–15 min", "15–30 min", "30–60 min", "1–4 h", "4–24 h", "> 1 day"];

function Stat({ label, value, hint }) {
  return html`<div class="stat"><dt>${label}</dt><dd>${value}</dd>${hint ? html`<dd class="hint">${hint}</dd>` : null}</div>`;
}

function Summary({ summary, title, windowed = false }) {
  if (!summary) return html`<p class="muted">Loading…</p>`;
  return html`<dl class="stats" aria-label=${title}>
    <${Stat} label=${windowed ? "Submitted" : "Patches"} value=${number(summary.totalPatches)} />
    <${Stat} label="Pending" value=${number(summary.pending)} hint=${`+ ${number(summary.escalated)} escalated`} />
    <${Stat} label="Approved" value=${number(summary.approved)} />
    <${Stat} label="Auto-approved" value=${number(summary.autoApproved)} hint=${`${percent(summary.autoApprovalRate, 1)} of decisions`} />
    <${Stat} label="Rejected" value=${number(summary.rejected)} hint=${`${percent(summary.rejectionRate, 1)} of decisions`} />
    <${Stat} label="Decision time" value=${duration(summary.avgDecisionTimeSeconds)} hint=${`p95 ${duration(summary.p95DecisionTimeSeconds)}`} />
    <${Stat} label="SLA breaches" value=${number(summary.slaBreaches)} />
    <${Stat} label="ML accuracy" value=${percent(summary.mlAccuracy, 1)} hint="agrees with wargaming" />
    <${Stat} label="Auto precision" value=${percent(summary.autoApprovalPrecision, 1)} hint="auto-approved that worked" />
  </dl>`;
}

function ByPriority({ rows }) {
  return html`<div class="table-wrap"><table class="data numbers">
    <caption class="sr-only">Patches by priority</caption>
    <thead><tr><th scope="col">Priority</th><th scope="col">Submitted</th><th scope="col">Pending</th><th scope="col">Escalated</th>
      <th scope="col">Approved</th><th scope="col">Auto-approved</th><th scope="col">Rejected</th><th scope="col">Cancelled</th>
      <th scope="col">Auto-approval rate</th><th scope="col">Rejection rate</th><th scope="col">Avg decision</th><th scope="col">SLA breaches</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr><th scope="row">${r.priority.toLowerCase()}</th><td>${number(r.total)}</td><td>${number(r.pending)}</td>
      <td>${number(r.escalated)}</td><td>${number(r.approved)}</td><td>${number(r.autoApproved)}</td><td>${number(r.rejected)}</td>
      <td>${number(r.cancelled)}</td><td>${percent(r.autoApprovalRate, 1)}</td><td>${percent(r.rejectionRate, 1)}</td>
      <td>${duration(r.avgDecisionTimeSeconds)}</td><td>${number(r.slaBreaches)}</td></tr>`)}</tbody>
  </table></div>`;
}

export function AnalyticsPage() {
  const { query } = useStore(route);
  const choice = WINDOWS.find(([key]) => key === query.get("window")) ?? WINDOWS[2];
  const [key, label, days, interval] = choice;
  // The window starts on a whole minute, so that reading it again on a live change asks the same question.
  const since = useMemo(() => (days ? new Date(Math.floor((Date.now() - days * 86400000) / 60000) * 60000).toISOString() : null), [key]);
  const live = useSubscription(SUMMARY, {});
  const report = useQuery(BREAKDOWN, { since, interval });
  const reread = useThrottled(report.refetch, 5000);
  const liveSummary = live.data?.analyticsSummary;
  useEffect(() => { if (liveSummary) reread(); }, [liveSummary]);

  const breakdown = report.data?.analyticsBreakdown;
  const period = (iso) => (interval === "HOUR" ? time(iso).slice(0, 5) : day(iso));
  return html`<section class="page analytics">
    <header class="page-head">
      <h1 tabindex="-1">Analytics</h1>
      <${LiveNote} receivedAt=${live.receivedAt} />
      <div class="toolbar">
        <label class="field inline"><span>Charts for</span>
          <select value=${key} onChange=${(e) => setQuery({ window: e.currentTarget.value === "30d" ? null : e.currentTarget.value })}>
            ${WINDOWS.map(([value, text]) => html`<option value=${value}>${text}</option>`)}
          </select>
        </label>
      </div>
    </header>
    <section class="card" aria-labelledby="overview"><h2 id="overview">All patches, live</h2><${Summary} summary=${liveSummary} title="All patches" /></section>
    ${report.error ? html`<p class="problem" role="alert">${report.error.message}</p>` : null}
    <section class="card" aria-labelledby="window-summary"><h2 id="window-summary">Submitted in the ${label.toLowerCase()}</h2>
      <${Summary} summary=${report.data?.analyticsSummary} title=${label} windowed /></section>
    ${breakdown
      ? html`<div class="charts">
          <section class="card"><${BarChart} caption="How long human decisions take (submission → decision)" valueLabel="Decisions"
            data=${breakdown.decisionTimes.map((b, i) => ({ label: BUCKETS[i], value: b.count }))} format=${(v) => number(v)} /></section>
          <section class="card"><${GroupedBars} caption="Auto-approval and rejection rate by priority"
            series=${[{ name: "auto-approved", className: "series-a" }, { name: "rejected", className: "series-b" }]}
            groups=${breakdown.byPriority.map((row) => ({ label: `${row.priority.toLowerCase()} (${row.approved + row.rejected + row.autoApproved})`, values: [row.autoApprovalRate, row.rejectionRate] }))}
            format=${(v) => percent(v)} max=${1}
            summary=${breakdown.byPriority.map((r) => `${r.priority}: ${percent(r.autoApprovalRate)} auto-approved, ${percent(r.rejectionRate)} rejected of ${r.approved + r.rejected + r.autoApproved} decided`).join("; ")} /></section>
          <section class="card wide"><${LineChart} caption=${`Auto-approval and rejection rate per ${interval.toLowerCase()} of submission`}
            series=${[{ name: "auto-approved", className: "series-a" }, { name: "rejected", className: "series-b" }]}
            points=${breakdown.overTime.map((p) => ({ label: period(p.start), values: [p.autoApprovalRate, p.rejectionRate] }))}
            bars=${breakdown.overTime.map((p) => p.submitted)} barsName="submitted (scaled)" format=${(v) => percent(v)} max=${1}
            summary=${`${breakdown.overTime.length} periods; ${breakdown.overTime.map((p) => `${period(p.start)}: ${percent(p.autoApprovalRate)} auto-approved, ${percent(p.rejectionRate)} rejected of ${p.submitted}`).join("; ")}`} /></section>
          <section class="card wide" aria-labelledby="by-priority"><h2 id="by-priority">By priority</h2><${ByPriority} rows=${breakdown.byPriority} /></section>
        </div>`
      : html`<p class="muted">${report.loading ? "Loading the charts…" : ""}</p>`}
  </section>`;
}
