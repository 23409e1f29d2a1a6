// Charts as plain SVG: each is a <figure> with a caption, an image with a text alternative, and its numbers in a
// table under "Show data" (for screen readers and for copying).
import { html, useId } from "../lib/ui.js";

function Figure({ caption, summary, table, children, frame = FRAME, series }) {
  const id = useId();
  return html`<figure class="chart">
    <figcaption id=${id}>${caption}</figcaption>
    <svg role="img" aria-labelledby=${id} aria-describedby=${`${id}-d`} viewBox=${`0 0 ${frame.width} ${frame.height}`} preserveAspectRatio="xMidYMid meet">
      ${children}
    </svg>
    ${series ? html`<ul class="legend" aria-hidden="true">${series.map((s) => html`<li><span class=${`swatch ${s.className}`}></span>${s.name}</li>`)}</ul>` : null}
    <p id=${`${id}-d`} class="sr-only">${summary}</p>
    ${table ? html`<details class="chart-data"><summary>Show data</summary>${table}</details>` : null}
  </figure>`;
}

const Table = ({ head, rows }) => html`<table class="data">
  <thead><tr>${head.map((cell) => html`<th scope="col">${cell}</th>`)}</tr></thead>
  <tbody>${rows.map((row) => html`<tr>${row.map((cell, i) => (i === 0 ? html`<th scope="row">${cell}</th>` : html`<td>${cell}</td>`))}</tr>`)}</tbody>
</table>`;

// Only count axes scale themselves (rates pass max=1): four gridline steps of a whole 1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10^k, so
// every gridline label is an exact count (7 -> 0 2 4 6 8; 13 -> 0 4 8 12 16; 101 -> 0 30 60 90 120).
const niceMax = (value) => {
  const quarter = Math.max(value, 4) / 4;
  const magnitude = 10 ** Math.floor(Math.log10(quarter));
  const step = [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].map((m) => m * magnitude).find((s) => s >= quarter && Number.isInteger(s));
  return 4 * step;
};

// The plot area inside an SVG of width × height (viewBox units = CSS pixels at the card's usual width).
const frameOf = (width, height) => ({ left: 48, right: 24, top: 12, bottom: 26, width, height, plotWidth: width - 72, plotHeight: height - 38 });
const FRAME = frameOf(640, 240);
const WIDE = frameOf(1280, 260);

function YAxis({ max, format, frame = FRAME }) {
  return [0, 0.25, 0.5, 0.75, 1].map((share) => {
    const y = frame.top + frame.plotHeight * (1 - share);
    return html`<g class="grid">
      <line x1=${frame.left} x2=${frame.width - frame.right} y1=${y} y2=${y} />
      <text x=${frame.left - 6} y=${y + 4} text-anchor="end">${format(max * share)}</text>
    </g>`;
  });
}

// Vertical bars: [{label, value}].
export function BarChart({ caption, data, format = String, valueLabel = "Value", summary }) {
  const max = niceMax(Math.max(...data.map((d) => d.value), 0));
  const { plotWidth, plotHeight } = FRAME;
  const slot = plotWidth / Math.max(data.length, 1);
  const width = Math.min(56, slot * 0.7);
  return html`<${Figure} caption=${caption} summary=${summary ?? data.map((d) => `${d.label}: ${format(d.value)}`).join(", ")}
      table=${html`<${Table} head=${["", valueLabel]} rows=${data.map((d) => [d.label, format(d.value)])} />`}>
    <${YAxis} max=${max} format=${format} />
    ${data.map((d, i) => {
      const h = (plotHeight * d.value) / max;
      const x = FRAME.left + slot * i + (slot - width) / 2;
      return html`<g>
        <rect class="bar" x=${x} y=${FRAME.top + plotHeight - h} width=${width} height=${h} rx="2"><title>${d.label}: ${format(d.value)}</title></rect>
        <text class="label" x=${x + width / 2} y=${FRAME.height - 8} text-anchor="middle">${d.label}</text>
      </g>`;
    })}
  <//>`;
}

// Grouped vertical bars: groups [{label, values: [number per series]}], series [{name, className}].
export function GroupedBars({ caption, groups, series, format = String, max: fixedMax, summary }) {
  const max = fixedMax ?? niceMax(Math.max(...groups.flatMap((g) => g.values), 0));
  const { plotWidth, plotHeight } = FRAME;
  const slot = plotWidth / Math.max(groups.length, 1);
  const width = Math.min(34, (slot * 0.75) / series.length);
  return html`<${Figure} caption=${caption} summary=${summary} series=${series}
      table=${html`<${Table} head=${["", ...series.map((s) => s.name)]} rows=${groups.map((g) => [g.label, ...g.values.map(format)])} />`}>
    <${YAxis} max=${max} format=${format} />
    ${groups.map((group, i) => {
      const start = FRAME.left + slot * i + (slot - width * series.length) / 2;
      return html`<g>
        ${group.values.map((value, j) => {
          const h = (plotHeight * value) / max;
          return html`<rect class=${`bar ${series[j].className}`} x=${start + j * width} y=${FRAME.top + plotHeight - h} width=${width - 3} height=${h} rx="2">
            <title>${group.label}, ${series[j].name}: ${format(value)}</title></rect>`;
        })}
        <text class="label" x=${FRAME.left + slot * i + slot / 2} y=${FRAME.height - 8} text-anchor="middle">${group.label}</text>
      </g>`;
    })}
  <//>`;
}

// Lines over periods: points [{label, values: [number per series]}], optional volume bars behind (bars: [number]).
export function LineChart({ caption, points, series, format = String, max: fixedMax, bars, barsName, summary }) {
  const max = fixedMax ?? niceMax(Math.max(...points.flatMap((p) => p.values), 0));
  const frame = WIDE;
  const { plotWidth, plotHeight } = frame;
  const step = points.length > 1 ? plotWidth / (points.length - 1) : 0;
  const x = (i) => frame.left + (points.length > 1 ? step * i : plotWidth / 2);
  const y = (value) => frame.top + plotHeight * (1 - value / max);
  const barMax = bars ? niceMax(Math.max(...bars, 0)) : 1;
  const labelEvery = Math.max(1, Math.ceil(points.length / 14));
  const head = ["Period", ...series.map((s) => s.name), ...(bars ? [barsName] : [])];
  const rows = points.map((p, i) => [p.label, ...p.values.map(format), ...(bars ? [String(bars[i])] : [])]);
  const legend = [...series, ...(bars ? [{ name: barsName, className: "volume" }] : [])];
  return html`<${Figure} caption=${caption} summary=${summary} frame=${frame} series=${legend} table=${html`<${Table} head=${head} rows=${rows} />`}>
    <${YAxis} max=${max} format=${format} frame=${frame} />
    ${bars
      ? bars.map((value, i) => {
        const h = (plotHeight * value) / barMax;
        const w = Math.max(2, Math.min(18, step * 0.6 || 18));
        return html`<rect class="volume" x=${x(i) - w / 2} y=${frame.top + plotHeight - h} width=${w} height=${h}><title>${points[i].label}: ${value} ${barsName}</title></rect>`;
      })
      : null}
    ${series.map((s, j) => html`<polyline class=${`line ${s.className}`} points=${points.map((p, i) => `${x(i)},${y(p.values[j])}`).join(" ")} />`)}
    ${series.map((s, j) => points.map((p, i) => html`<circle class=${`dot ${s.className}`} cx=${x(i)} cy=${y(p.values[j])} r="3"><title>${p.label}, ${s.name}: ${format(p.values[j])}</title></circle>`))}
    ${points.map((p, i) => (i % labelEvery === 0 ? html`<text class="label" x=${x(i)} y=${frame.height - 8} text-anchor="middle">${p.label}</text>` : null))}
  <//>`;
}

// SHAP values as diverging horizontal bars: right (towards "works") and left (towards "fails").
export function ShapChart({ contributions, limit = 10 }) {
  const sorted = [...contributions].sort((a, b) => Math.abs(b.value) - Math.abs(a.value));
  const top = sorted.slice(0, limit);
  const rest = sorted.slice(limit).reduce((sum, c) => sum + c.value, 0);
  const rows = [...top, ...(sorted.length > limit ? [{ feature: `${sorted.length - limit} other features`, value: rest, other: true }] : [])];
  const max = Math.max(...rows.map((r) => Math.abs(r.value)), 1e-6);
  const rowHeight = 22;
  const height = rows.length * rowHeight + 28;
  const middle = 385;
  const half = 140;
  const id = useId();
  const summary = rows.map((r) => `${r.feature.replace(/_/g, " ")} ${r.value >= 0 ? "towards works" : "towards fails"} ${Math.abs(r.value).toFixed(3)}`).join(", ");
  return html`<figure class="chart shap">
    <figcaption id=${id}>What pushed the prediction (SHAP, log-odds): <span class="push-works">→ works</span>, <span class="push-fails">← fails</span></figcaption>
    <svg role="img" aria-labelledby=${id} aria-describedby=${`${id}-d`} viewBox=${`0 0 575 ${height}`}>
      <line class="axis" x1=${middle} x2=${middle} y1="4" y2=${height - 20} />
      ${rows.map((r, i) => {
        const w = (half * Math.abs(r.value)) / max;
        const y = 8 + i * rowHeight;
        return html`<g>
          <text class=${`label ${r.other ? "muted" : ""}`} x=${middle - half - 50} y=${y + 13} text-anchor="end">${r.feature.replace(/_/g, " ")}</text>
          <rect class=${r.value >= 0 ? "shap-works" : "shap-fails"} x=${r.value >= 0 ? middle : middle - w} y=${y} width=${Math.max(w, 1)} height=${rowHeight - 6} rx="2">
            <title>${r.feature}: ${r.value.toFixed(4)}</title></rect>
          <text class="value" x=${r.value >= 0 ? middle + w + 4 : middle - w - 4} y=${y + 13} text-anchor=${r.value >= 0 ? "start" : "end"}>${r.value >= 0 ? "+" : "−"}${Math.abs(r.value).toFixed(3)}</text>
        </g>`;
      })}
    </svg>
    <p id=${`${id}-d`} class="sr-only">${summary}</p>
    <details class="chart-data"><summary>Show data</summary>
      <${Table} head=${["Feature", "SHAP value"]} rows=${sorted.map((c) => [c.feature, c.value.toFixed(4)])} />
    </details>
  </figure>`;
}

// Reliability diagram: mean predicted probability against the observed rate per bin (the diagonal is perfect).
export function CalibrationChart({ bins, caption }) {
  const size = 220;
  const left = 210;
  const top = 10;
  const px = (v) => left + v * size;
  const py = (v) => top + size * (1 - v);
  const used = bins.filter((b) => b.count > 0);
  return html`<${Figure} caption=${caption} frame=${frameOf(640, 270)}
      summary=${used.map((b) => `predicted ${(b.meanPredicted * 100).toFixed(0)}%: observed ${(b.observedRate * 100).toFixed(0)}% of ${b.count}`).join(", ")}
      table=${html`<${Table} head=${["Bin", "Patches", "Mean predicted", "Observed rate"]}
        rows=${bins.map((b) => [`${b.lower.toFixed(1)}–${b.upper.toFixed(1)}`, b.count, b.meanPredicted === null ? "–" : b.meanPredicted.toFixed(3), b.observedRate === null ? "–" : b.observedRate.toFixed(3)])} />`}>
    <rect class="frame" x=${left} y=${top} width=${size} height=${size} />
    <line class="diagonal" x1=${px(0)} y1=${py(0)} x2=${px(1)} y2=${py(1)} />
    ${[0, 0.5, 1].map((v) => html`<text class="label" x=${px(v)} y=${top + size + 14} text-anchor="middle">${v}</text>
      <text class="label" x=${left - 6} y=${py(v) + 4} text-anchor="end">${v}</text>`)}
    <text class="label" x=${left + size / 2} y=${top + size + 27} text-anchor="middle">predicted</text>
    <text class="label" x=${left - 30} y=${top + size / 2} text-anchor="end">observed</text>
    <polyline class="line series-a" points=${used.map((b) => `${px(b.meanPredicted)},${py(b.observedRate)}`).join(" ")} />
    ${used.map((b) => html`<circle class="dot series-a" cx=${px(b.meanPredicted)} cy=${py(b.observedRate)} r=${3 + Math.min(6, Math.sqrt(b.count) / 2)}>
      <title>predicted ${b.meanPredicted.toFixed(2)}, observed ${b.observedRate.toFixed(2)} (${b.count})</title></circle>`)}
  <//>`;
}

// Horizontal bars: [{label, value}] (feature importance).
export function HBarChart({ caption, data, format = (v) => v.toFixed(1) }) {
  const max = Math.max(...data.map((d) => d.value), 1e-6);
  const rowHeight = 22;
  const id = useId();
  return html`<figure class="chart">
    <figcaption id=${id}>${caption}</figcaption>
    <svg role="img" aria-labelledby=${id} viewBox=${`0 0 800 ${data.length * rowHeight + 10}`}>
      ${data.map((d, i) => {
        const w = (480 * d.value) / max;
        const y = 4 + i * rowHeight;
        return html`<g>
          <text class="label" x="242" y=${y + 13} text-anchor="end">${d.label}</text>
          <rect class="bar" x="250" y=${y} width=${Math.max(w, 1)} height=${rowHeight - 6} rx="2"><title>${d.label}: ${format(d.value)}</title></rect>
          <text class="value" x=${254 + w} y=${y + 13}>${format(d.value)}</text>
        </g>`;
      })}
    </svg>
    <details class="chart-data"><summary>Show data</summary><${Table} head=${["", "Value"]} rows=${data.map((d) => [d.label, format(d.value)])} /></details>
  </figure>`;
}
