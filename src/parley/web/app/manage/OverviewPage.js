// Overview: traffic, errors, latency, time to first token, tokens, spend and cache hit
// rate over the last hour, day or week, per model group, from /admin/overview (the
// usage rollups). Deployments whose breaker is not closed come first. It redraws from
// the API every 15 s while shown and at once when the range or team changes.
import { html, useState } from "../../vendor/preact.js";
import { ErrorText } from "../components/ErrorText.js";
import * as admin from "./api.js";
import { BarChart, LineChart } from "./chart.js";
import { count, dayOf, hourOf, ms, percent, usd } from "./format.js";
import { teamChoices, usePolled } from "./reading.js";
import { Cell, Select } from "./widgets.js";

const EVERY_MS = 15_000;
const RANGES = [["hour", "Last hour"], ["day", "Last day"], ["week", "Last week"]];
const BREAKER = { open: "Open", half_open: "Half-open" };

// What the chart can show: bars for what adds up, lines for what does not.
const METRICS = {
  requests: { label: "Requests", kind: "bars", of: (p) => p.requests, format: count },
  errors: { label: "Errors", kind: "bars", of: (p) => p.errors, format: count },
  tokens: { label: "Tokens", kind: "bars", of: (p) => p.prompt_tokens + p.completion_tokens, format: count },
  spend: { label: "Spend", kind: "bars", of: (p) => p.cost_usd, format: usd },
  p50: { label: "Latency p50", kind: "lines", of: (p) => p.latency_ms.p50, format: ms },
  p99: { label: "Latency p99", kind: "lines", of: (p) => p.latency_ms.p99, format: ms },
  ttft: { label: "Time to first token p50", kind: "lines", of: (p) => p.ttft_ms.p50, format: ms },
  cache: { label: "Cache hit rate", kind: "lines", of: (p) => p.cache_hit_rate, format: percent },
};

/** Every bucket of the window, empty ones too, so a quiet hour shows as a gap. */
function buckets(body) {
  const size = body.series_grain === "day" ? 86_400_000 : 3_600_000;
  const out = [];
  for (let b = Math.floor(body.start / size) * size; b <= body.end; b += size) out.push(b);
  return out;
}

function Chart({ body, metric }) {
  const m = METRICS[metric];
  const groups = body.groups.map((g) => g.model_group);
  const times = buckets(body);
  const at = new Map(body.series.map((p) => [`${p.bucket} ${p.model_group}`, p]));
  const label = body.series_grain === "day" ? dayOf : hourOf;
  const title = `${m.label} per ${body.series_grain}`;
  if (m.kind === "bars") {
    const bars = times.map((t) => ({
      label: label(t),
      parts: groups.map((g) => { const p = at.get(`${t} ${g}`); return p ? m.of(p) : 0; }),
    }));
    return html`<${BarChart} label=${title} bars=${bars} series=${groups} format=${m.format} />`;
  }
  const lines = groups.map((g) => ({
    name: g,
    values: times.map((t) => { const p = at.get(`${t} ${g}`); return p ? m.of(p) ?? null : null; }),
  }));
  return html`<${LineChart} label=${title} labels=${times.map(label)} lines=${lines} format=${m.format} />`;
}

function Figures({ totals }) {
  const t = totals;
  const figures = [
    ["Requests", count(t.requests)],
    ["Errors", `${count(t.errors)} (${percent(t.requests ? t.error_rate : null)})`],
    ["Latency p50", ms(t.latency_ms.p50)],
    ["Latency p99", ms(t.latency_ms.p99)],
    ["First token p50 / p99", `${ms(t.ttft_ms.p50)} / ${ms(t.ttft_ms.p99)}`],
    ["Tokens in / out", `${count(t.prompt_tokens)} / ${count(t.completion_tokens)}`],
    ["Spend", usd(t.cost_usd)],
    ["Cache hit rate", percent(t.cache_hit_rate)],
  ];
  return html`<dl class="figures">${figures.map(([name, value]) => html`<div key=${name} class="figure">
    <dt>${name}</dt><dd>${value}</dd></div>`)}</dl>`;
}

function Breakers({ breakers }) {
  if (breakers === null) return null; // team admins: deployments are for global admins
  if (breakers.length === 0) return html`<p class="hint breakers-ok">Every deployment's breaker is closed.</p>`;
  return html`<section class="breakers" aria-labelledby="breakers-title">
    <h2 id="breakers-title">Breakers not closed</h2>
    <ul>${breakers.map((b) => html`<li key=${b.deployment}>
      <span class=${`breaker ${b.breaker}`}>${BREAKER[b.breaker] ?? b.breaker}</span>
      <strong>${b.deployment}</strong> <span class="hint">(${b.group})</span>
    </li>`)}</ul>
    <p class="hint"><a href="/manage/deployments">Deployments</a> has their latency and errors.</p>
  </section>`;
}

function GroupsTable({ groups }) {
  return html`<div class="table-scroll" tabindex="0"><table class="console-table" role="table">
    <caption class="visually-hidden">Model groups</caption>
    <thead role="rowgroup"><tr role="row"><th role="columnheader">Model group</th><th role="columnheader">Requests</th><th role="columnheader">Errors</th>
      <th role="columnheader">Latency p50 / p99</th><th role="columnheader">First token p50</th><th role="columnheader">Tokens</th>
      <th role="columnheader">Spend</th><th role="columnheader">Cache hit rate</th></tr></thead>
    <tbody role="rowgroup">${groups.map((g) => html`<tr role="row" key=${g.model_group}>
      <${Cell} label="Model group"><strong>${g.model_group}</strong></${Cell}>
      <${Cell} label="Requests">${count(g.requests)}</${Cell}>
      <${Cell} label="Errors">${count(g.errors)} (${percent(g.error_rate)})</${Cell}>
      <${Cell} label="Latency p50 / p99">${ms(g.latency_ms.p50)} / ${ms(g.latency_ms.p99)}</${Cell}>
      <${Cell} label="First token p50">${ms(g.ttft_ms.p50)}</${Cell}>
      <${Cell} label="Tokens">${count(g.prompt_tokens + g.completion_tokens)}</${Cell}>
      <${Cell} label="Spend">${usd(g.cost_usd)}</${Cell}>
      <${Cell} label="Cache hit rate">${percent(g.cache_hit_rate)}</${Cell}>
    </tr>`)}</tbody>
  </table></div>`;
}

export function OverviewPage({ teams, global }) {
  const choices = teamChoices(teams, global);
  const [range, setRange] = useState("day");
  const [team, setTeam] = useState(choices.first);
  const [metric, setMetric] = useState("requests");
  const { found, error, at } = usePolled(
    () => admin.overview({ window: range, team_id: team || undefined }), [range, team], EVERY_MS,
  );
  const body = found;
  return html`<h1>Overview</h1>
    ${body && html`<${Breakers} breakers=${body.breakers} />`}
    <div class="console-bar">
      <div class="field">
        <span class="field-label" id="overview-range">Range</span>
        <div class="segmented" role="group" aria-labelledby="overview-range">
          ${RANGES.map(([id, text]) => html`<button type="button" key=${id} aria-pressed=${range === id ? "true" : "false"}
            onClick=${() => setRange(id)}>${text}</button>`)}
        </div>
      </div>
      ${(global || teams.length > 1) && html`<${Select} label="Team" name="overview-team" options=${choices.options} value=${team}
        onChange=${(e) => setTeam(e.currentTarget.value)} />`}
    </div>
    <${ErrorText} error=${error} />
    ${body === null && !error && html`<p class="boot" role="status">Loading…</p>`}
    ${body && html`
      <p class="hint" role="status">Since ${new Date(body.start).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" })}${at ? ` · updated ${new Date(at).toLocaleTimeString()}` : ""}. Percentiles are read from fixed latency buckets (within one bucket's width).</p>
      <${Figures} totals=${body.totals} />
      <div class="console-bar">
        <${Select} label="Chart" name="overview-metric" options=${Object.entries(METRICS).map(([id, m]) => [id, m.label])}
          value=${metric} onChange=${(e) => setMetric(e.currentTarget.value)} />
      </div>
      <${Chart} body=${body} metric=${metric} />
      <h2>By model group</h2>
      ${body.groups.length === 0
        ? html`<p class="empty-state">No requests in this range.</p>`
        : html`<${GroupsTable} groups=${body.groups} />`}`}`;
}
