// The console's charts: inline SVG drawn here, no library. Two kinds: stacked bars (for
// what adds up: requests, tokens, spend) and lines (for what does not: percentiles, rates).
// Each chart is an image with a name that says what it shows and its largest value, and
// each bar or point carries a <title> (the browser's tooltip); the same figures are in the
// table beside every chart, for screen readers and for copying.
import { html, useEffect, useRef, useState } from "../../vendor/preact.js";

const HEIGHT = 200;
const PAD = { top: 12, right: 12, bottom: 26, left: 54 };
export const SERIES_COLOURS = 6; // .chart .s0 .. .s5 in manage.css, light and dark

/** The width the chart's box is laid out at, followed as it changes (phones, drawers). */
function useWidth() {
  const ref = useRef(null);
  const [width, setWidth] = useState(0);
  useEffect(() => {
    const box = ref.current;
    if (!box) return undefined;
    const observer = new ResizeObserver(([entry]) => setWidth(Math.floor(entry.contentRect.width)));
    observer.observe(box);
    setWidth(Math.floor(box.getBoundingClientRect().width));
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}

/** Round numbers for the y axis: 0 and up to four steps of 1, 2 or 5 x 10^n. */
function ticks(top) {
  if (!(top > 0)) return [0, 1];
  const rough = top / 4;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough);
  const out = [];
  for (let v = 0; v < top + step / 2; v += step) out.push(Number(v.toPrecision(12)));
  if (out[out.length - 1] < top) out.push(out[out.length - 1] + step);
  return out;
}

/** At most ``most`` of ``count`` labels, evenly spaced, always the first. */
function every(count, most) {
  const stride = Math.max(1, Math.ceil(count / most));
  return (i) => i % stride === 0;
}

function Legend({ series }) {
  if (series.length < 2) return null;
  return html`<ul class="chart-legend" aria-hidden="true">${series.map((name, i) =>
    html`<li key=${name}><span class=${`swatch s${i % SERIES_COLOURS}`}></span>${name}</li>`)}</ul>`;
}

function Frame({ label, summary, width, yTicks, format, y, children }) {
  const inner = width - PAD.left - PAD.right;
  return html`<svg class="chart" role="img" aria-label=${`${label}: ${summary}`} width=${width} height=${HEIGHT}
      viewBox=${`0 0 ${width} ${HEIGHT}`}>
    ${yTicks.map((v) => html`<g key=${v} class="tick">
      <line x1=${PAD.left} x2=${PAD.left + inner} y1=${y(v)} y2=${y(v)} />
      <text x=${PAD.left - 6} y=${y(v)} dy="0.32em" text-anchor="end">${format(v)}</text>
    </g>`)}
    ${children}
  </svg>`;
}

/**
 * Stacked bars. ``bars``: [{label, tip, parts: [number per series]}]; ``series``: the
 * names of the parts (one colour each); ``format``: how a value is written.
 */
export function BarChart({ label, bars, series, format, empty = "Nothing in this range." }) {
  const [ref, width] = useWidth();
  const totals = bars.map((b) => b.parts.reduce((a, v) => a + (v || 0), 0));
  const most = Math.max(0, ...totals);
  const yTicks = ticks(most);
  const top = yTicks[yTicks.length - 1] || 1;
  const inner = Math.max(0, width - PAD.left - PAD.right);
  const bottom = HEIGHT - PAD.bottom;
  const y = (v) => bottom - (v / top) * (bottom - PAD.top);
  const slot = bars.length ? inner / bars.length : 0;
  const barWidth = Math.max(1, Math.min(48, slot * 0.72));
  const labelled = every(bars.length, Math.max(1, Math.floor(inner / 72)));
  const peak = totals.indexOf(most);
  const summary = bars.length === 0 || most === 0
    ? "no data"
    : `${bars.length} ${bars.length === 1 ? "bar" : "bars"}, the highest ${format(most)} (${bars[peak].label})`;
  return html`<figure class="chart-box">
    <div class="chart-area" ref=${ref}>
      ${width > 0 && html`<${Frame} label=${label} summary=${summary} width=${width} yTicks=${yTicks} format=${format} y=${y}>
        ${bars.map((bar, i) => {
          const x = PAD.left + slot * i + (slot - barWidth) / 2;
          let base = 0;
          return html`<g key=${bar.label} class="bar">
            ${bar.parts.map((value, s) => {
              if (!value) return null;
              const y0 = y(base);
              base += value;
              return html`<rect key=${s} class=${`s${s % SERIES_COLOURS}`} x=${x} width=${barWidth}
                y=${y(base)} height=${Math.max(0.5, y0 - y(base))}>
                <title>${bar.tip ?? bar.label}${series.length > 1 ? ` · ${series[s]}` : ""}: ${format(value)}</title>
              </rect>`;
            })}
            ${labelled(i) && html`<text class="x-label" x=${x + barWidth / 2} y=${HEIGHT - 8} text-anchor="middle">${bar.label}</text>`}
          </g>`;
        })}
      </${Frame}>`}
    </div>
    ${most === 0 && html`<figcaption class="empty-state">${empty}</figcaption>`}
    <${Legend} series=${series} />
  </figure>`;
}

/**
 * Lines over shared x labels. ``labels``: the x axis; ``lines``: [{name, values: [number
 * or null per label]}] (null: no point there).
 */
export function LineChart({ label, labels, lines, format, empty = "Nothing in this range." }) {
  const [ref, width] = useWidth();
  const all = lines.flatMap((l) => l.values).filter((v) => v !== null && v !== undefined);
  const most = Math.max(0, ...all);
  const yTicks = ticks(most);
  const top = yTicks[yTicks.length - 1] || 1;
  const inner = Math.max(0, width - PAD.left - PAD.right);
  const bottom = HEIGHT - PAD.bottom;
  const y = (v) => bottom - (v / top) * (bottom - PAD.top);
  const step = labels.length > 1 ? inner / (labels.length - 1) : 0;
  const x = (i) => PAD.left + (labels.length > 1 ? step * i : inner / 2);
  const labelled = every(labels.length, Math.max(1, Math.floor(inner / 72)));
  const summary = all.length === 0
    ? "no data"
    : `${lines.length} ${lines.length === 1 ? "line" : "lines"} over ${labels.length} points, the highest ${format(most)}`;
  return html`<figure class="chart-box">
    <div class="chart-area" ref=${ref}>
      ${width > 0 && html`<${Frame} label=${label} summary=${summary} width=${width} yTicks=${yTicks} format=${format} y=${y}>
        ${labels.map((text, i) => labelled(i) && html`<text key=${i} class="x-label" x=${x(i)} y=${HEIGHT - 8} text-anchor="middle">${text}</text>`)}
        ${lines.map((line, s) => {
          const points = line.values.map((v, i) => (v === null || v === undefined ? null : [x(i), y(v), v, i])).filter(Boolean);
          const path = points.map(([px, py], i) => `${i ? "L" : "M"}${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
          return html`<g key=${line.name} class=${`line s${s % SERIES_COLOURS}`}>
            ${points.length > 1 && html`<path d=${path} />`}
            ${points.map(([px, py, v, i]) => html`<circle key=${i} cx=${px} cy=${py} r="3">
              <title>${labels[i]}${lines.length > 1 ? ` · ${line.name}` : ""}: ${format(v)}</title>
            </circle>`)}
          </g>`;
        })}
      </${Frame}>`}
    </div>
    ${all.length === 0 && html`<figcaption class="empty-state">${empty}</figcaption>`}
    <${Legend} series=${lines.map((l) => l.name)} />
  </figure>`;
}
