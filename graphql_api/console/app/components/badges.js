// Small labels of the queue and patch pages: priority, severity, status, SLA with a live countdown, ML
// confidence, wargaming, escalation and approvals.
import { ago, countdown, duration, at, percent } from "../lib/format.js";
import { useNow } from "../lib/hooks.js";
import { isOpen } from "../lib/roles.js";
import { html } from "../lib/ui.js";

const LEVELS = new Set(["CRITICAL", "HIGH", "MEDIUM", "LOW"]);
const STATUSES = new Set(["PENDING", "APPROVED", "REJECTED", "AUTO_APPROVED", "ESCALATED", "CANCELLED"]);
const cls = (value, known) => (known.has(value) ? value.toLowerCase() : "unknown");

export const Priority = ({ value }) => html`<span class="badge level-${cls(value, LEVELS)}" title="Priority">${value}</span>`;
const scoreText = (score) => (score !== null && score !== undefined ? score.toFixed(1) : "");
export const Severity = ({ value, score, long = false }) =>
  long
    ? html`<span class="severity level-text-${cls(value, LEVELS)}">${value.toLowerCase()} severity${score !== null && score !== undefined ? ` (CVSS ${scoreText(score)})` : ""}</span>`
    : html`<span class="severity level-text-${cls(value, LEVELS)}" title="Severity (CVSS)">${value} ${scoreText(score)}</span>`;
export const Status = ({ value }) => html`<span class="badge status-${cls(value, STATUSES)}">${value.replace("_", " ")}</span>`;

// The SLA of an open patch, counted down on the server's clock: AT_RISK past 80% of it, BREACHED past it.
export function Sla({ patch }) {
  if (!patch.slaDeadline) return html`<span class="sla sla-none">no SLA</span>`;
  if (!isOpen(patch)) return html`<span class="sla sla-${patch.slaStatus.toLowerCase()}">${patch.slaStatus.replace("_", " ")}</span>`;
  return html`<${Countdown} patch=${patch} />`;
}

// Only these labels follow the clock, not the pages around them: a page of 500 rows is not rendered every second.
function Countdown({ patch }) {
  const now = useNow();
  const deadline = Date.parse(patch.slaDeadline);
  const created = Date.parse(patch.createdAt);
  const left = (deadline - now) / 1000;
  const status = left <= 0 ? "breached" : now >= created + 0.8 * (deadline - created) ? "at_risk" : "ok";
  const label = left > 0 ? `${countdown(left)} left` : `breached ${duration(-left)} ago`;
  return html`<span class="sla sla-${status}" title=${`SLA deadline ${at(patch.slaDeadline)}`}>${label}</span>`;
}

export function Age({ iso }) {
  const now = useNow(15000);
  return html`<span title=${at(iso)}>${ago(iso, now)}</span>`;
}

export function Confidence({ prediction }) {
  if (!prediction) return html`<span class="muted">no prediction</span>`;
  const value = prediction.confidence;
  return html`<span class="confidence ${prediction.prediction ? "works" : "fails"}" title=${prediction.prediction ? "The model predicts the patch works" : "The model predicts the patch fails"}>
    <span class="meter" aria-hidden="true"><span style=${{ width: `${Math.round(value * 100)}%` }}></span></span>
    ${percent(value)} ${prediction.prediction ? "works" : "fails"}
  </span>`;
}

export function Wargaming({ result }) {
  if (!result) return html`<span class="muted">pending</span>`;
  return result.validationPassed
    ? html`<span class="wg wg-pass" title="Exploit reproduced before the patch and blocked after it">✓ passed</span>`
    : html`<span class="wg wg-fail" title="Wargaming validation failed">✗ failed</span>`;
}

export function Flags({ patch }) {
  const approvals = patch.approvals?.length ?? 0;
  return html`
    ${patch.requiresEscalation && isOpen(patch) ? html`<span class="flag flag-escalation">needs escalation</span>` : null}
    ${patch.requiredApprovals > 1 || approvals > 0
      ? html`<span class="flag flag-approvals" title="Distinct approvals so far">${approvals} of ${patch.requiredApprovals} approvals</span>`
      : null}
    ${patch.mlWargamingAgreement === false ? html`<span class="flag flag-disagree" title="The model and wargaming disagree">ML ≠ wargaming</span>` : null}
  `;
}
