// A CVSS v3.x or v4.0 vector taken apart into named metrics.
import { html } from "../lib/ui.js";

const NONE_LOW_HIGH = { N: "None", L: "Low", H: "High" };
const METRICS = {
  AV: ["Attack vector", { N: "Network", A: "Adjacent", L: "Local", P: "Physical" }],
  AC: ["Attack complexity", { L: "Low", H: "High" }],
  AT: ["Attack requirements", { N: "None", P: "Present" }],
  PR: ["Privileges required", NONE_LOW_HIGH],
  UI: ["User interaction", { N: "None", R: "Required", P: "Passive", A: "Active" }],
  S: ["Scope", { U: "Unchanged", C: "Changed" }],
  C: ["Confidentiality", NONE_LOW_HIGH],
  I: ["Integrity", NONE_LOW_HIGH],
  A: ["Availability", NONE_LOW_HIGH],
  VC: ["Confidentiality (vulnerable system)", NONE_LOW_HIGH],
  VI: ["Integrity (vulnerable system)", NONE_LOW_HIGH],
  VA: ["Availability (vulnerable system)", NONE_LOW_HIGH],
  SC: ["Confidentiality (subsequent systems)", NONE_LOW_HIGH],
  SI: ["Integrity (subsequent systems)", NONE_LOW_HIGH],
  SA: ["Availability (subsequent systems)", NONE_LOW_HIGH],
  E: ["Exploit maturity", { X: "Not defined", U: "Unreported", P: "Proof of concept", F: "Functional", H: "High", A: "Attacked" }],
  RL: ["Remediation level", { X: "Not defined", O: "Official fix", T: "Temporary fix", W: "Workaround", U: "Unavailable" }],
  RC: ["Report confidence", { X: "Not defined", U: "Unknown", R: "Reasonable", C: "Confirmed" }],
};

// The value of each base metric that makes a vulnerability worse (easier to exploit, or more impact).
const WORST = { AV: "N", AC: "L", AT: "N", PR: "N", UI: "N", S: "C", C: "H", I: "H", A: "H", VC: "H", VI: "H", VA: "H", SC: "H", SI: "H", SA: "H" };

export function parseVector(vector) {
  const [head, ...parts] = vector.split("/");
  const version = head.startsWith("CVSS:") ? head.slice(5) : null;
  const metrics = (version ? parts : [head, ...parts]).filter(Boolean).map((part) => {
    const [key, value] = part.split(":");
    const known = METRICS[key];
    return { key, value, name: known?.[0] ?? key, meaning: known?.[1]?.[value] ?? value, worst: WORST[key] === value };
  });
  return { version, metrics };
}

export function CvssVector({ vector }) {
  const { version, metrics } = parseVector(vector);
  return html`<div class="cvss">
    <p class="mono small">${vector}</p>
    <table class="kv">
      <caption class="sr-only">CVSS ${version ?? ""} metrics</caption>
      <tbody>
        ${metrics.map((m) => html`<tr><th scope="row">${m.name}</th><td><span class=${m.worst ? "cvss-high" : ""}>${m.meaning}</span> <span class="muted mono">${m.key}:${m.value}</span></td></tr>`)}
      </tbody>
    </table>
  </div>`;
}
