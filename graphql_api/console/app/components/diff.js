// A unified diff rendered as a diff: file headers, hunks, old and new line numbers, additions and deletions.
// Every line is a text node (the diff comes from upstream and is never trusted as markup).
import { html, useMemo, useState } from "../lib/ui.js";

const SHOWN_AT_FIRST = 1500;
const HUNK = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/;

export function parseDiff(text) {
  const rows = [];
  let oldLine = 0;
  let newLine = 0;
  let inHunk = false;
  for (const line of text.replace(/\r\n/g, "\n").replace(/\n$/, "").split("\n")) {
    const hunk = HUNK.exec(line);
    if (hunk) {
      oldLine = Number(hunk[1]);
      newLine = Number(hunk[2]);
      inHunk = true;
      rows.push({ kind: "hunk", text: line });
    } else if (line.startsWith("diff ") || line.startsWith("index ") || (!inHunk && (line.startsWith("--- ") || line.startsWith("+++ ")))) {
      if (line.startsWith("diff ")) inHunk = false;
      rows.push({ kind: "file", text: line });
    } else if (inHunk && line.startsWith("+")) {
      rows.push({ kind: "add", text: line.slice(1), newNo: newLine++ });
    } else if (inHunk && line.startsWith("-")) {
      rows.push({ kind: "del", text: line.slice(1), oldNo: oldLine++ });
    } else if (inHunk && line.startsWith("\\")) {
      rows.push({ kind: "note", text: line });
    } else if (inHunk) {
      rows.push({ kind: "ctx", text: line.slice(1), oldNo: oldLine++, newNo: newLine++ });
    } else {
      rows.push({ kind: "file", text: line });
    }
  }
  return rows;
}

const SIGN = { add: "+", del: "−", ctx: " " };

export function Diff({ text }) {
  const rows = useMemo(() => parseDiff(text), [text]);
  const [all, setAll] = useState(false);
  const shown = all ? rows : rows.slice(0, SHOWN_AT_FIRST);
  const added = rows.filter((r) => r.kind === "add").length;
  const removed = rows.filter((r) => r.kind === "del").length;
  return html`<div class="diff-wrap">
    <p class="diff-stats"><span class="adds">+${added}</span> <span class="dels">−${removed}</span> lines</p>
    <div class="diff-scroll" tabindex="0" role="region" aria-label="Diff">
      <table class="diff">
        <tbody>
          ${shown.map((row) =>
            row.kind === "file" || row.kind === "hunk" || row.kind === "note"
              ? html`<tr class=${`d-${row.kind}`}><td colspan="4">${row.text}</td></tr>`
              : html`<tr class=${`d-${row.kind}`}>
                  <td class="no">${row.oldNo ?? ""}</td><td class="no">${row.newNo ?? ""}</td>
                  <td class="sign" aria-label=${row.kind === "add" ? "added" : row.kind === "del" ? "removed" : null}>${SIGN[row.kind]}</td>
                  <td class="code">${row.text}</td>
                </tr>`)}
        </tbody>
      </table>
    </div>
    ${rows.length > shown.length ? html`<button type="button" class="link" onClick=${() => setAll(true)}>Show all ${rows.length} lines</button>` : null}
  </div>`;
}
