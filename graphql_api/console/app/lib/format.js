// Text for numbers, times and durations (en-GB-style 24 h times, UTC offsets left to the browser).

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const s = Math.round(Math.abs(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

// A countdown: "4:09" under an hour, otherwise like duration().
export function countdown(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s >= 3600) return duration(s);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export function ago(iso, now = Date.now()) {
  const seconds = (now - Date.parse(iso)) / 1000;
  if (seconds < 45) return "just now";
  return `${duration(seconds).split(" ")[0]} ago`;
}

const dateTime = new Intl.DateTimeFormat("en-GB", { dateStyle: "medium", timeStyle: "medium" });
const dateOnly = new Intl.DateTimeFormat("en-GB", { day: "numeric", month: "short" });
const timeOnly = new Intl.DateTimeFormat("en-GB", { timeStyle: "medium" });
export const at = (iso) => (iso ? dateTime.format(new Date(iso)) : "–");
export const day = (iso) => dateOnly.format(new Date(iso));
export const time = (value) => timeOnly.format(new Date(value));

export const percent = (value, digits = 0) => (value === null || value === undefined ? "–" : `${(value * 100).toFixed(digits)}%`);
export const number = (value, digits = 0) => (value === null || value === undefined ? "–" : Number(value).toLocaleString("en-GB", { maximumFractionDigits: digits, minimumFractionDigits: digits }));

// "SHAP feature names" → words: cvss_attack_vector_network → "cvss attack vector network"
export const feature = (name) => name.replace(/_/g, " ");

// An event kind or action as words: APPROVAL_RECORDED → "approval recorded"
export const words = (value) => String(value).toLowerCase().replace(/_/g, " ").replace(/\bsla\b/, "SLA").replace(/\bml\b/, "ML");
