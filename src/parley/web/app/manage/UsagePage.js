// Usage: requests, tokens, errors and spend by day, hour, key, user, team or model group
// over a chosen range of UTC days, as a chart and a table, with the same report as CSV.
// From /admin/usage, which reads the rollups (never the raw rows), so it stays fast at
// any number of requests.
import { html, useEffect, useState } from "../../vendor/preact.js";
import { ErrorText } from "../components/ErrorText.js";
import * as admin from "./api.js";
import { BarChart } from "./chart.js";
import { count, dayOf, hourOf, usd } from "./format.js";
import { teamChoices, usePolled } from "./reading.js";
import { Cell, Input, Select } from "./widgets.js";

const DAY_MS = 86_400_000;
const LIMIT = 1000;
const GROUPINGS = [["day", "Day"], ["hour", "Hour"], ["key", "Key"], ["user", "User"], ["team", "Team"], ["model_group", "Model group"]];
const METRICS = [["requests", "Requests"], ["tokens", "Tokens"], ["cost_usd", "Spend"], ["errors", "Errors"]];
const COLUMN = Object.fromEntries(GROUPINGS);

function isoDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

/** The range as the API takes it: from the first day's midnight to the day after the last (UTC). */
function rangeOf(from, to) {
  const start = Date.parse(`${from}T00:00:00Z`);
  const end = Date.parse(`${to}T00:00:00Z`) + DAY_MS;
  return Number.isFinite(start) && Number.isFinite(end) && end > start ? { start, end } : null;
}

/** Names for the ids a report groups by: keys, teams, and the users the viewer may see. */
function useNames(groupBy, team, teams, global) {
  const [names, setNames] = useState({});
  useEffect(() => {
    let stopped = false;
    const done = (found) => { if (!stopped) setNames(found); };
    if (groupBy === "team") done(Object.fromEntries(teams.map((t) => [t.id, t.name])));
    else if (groupBy === "key") {
      admin.listKeys(team || undefined).then((found) => done(Object.fromEntries(found.data.map((k) => [k.id, k.name ? `${k.name} (${k.prefix}…)` : `${k.prefix}…`]))), () => done({}));
    } else if (groupBy === "user") {
      const users = global
        ? admin.listUsers(0, 1000).then((found) => found.data)
        : team ? admin.getTeam(team).then((found) => found.members ?? []) : Promise.resolve([]);
      users.then((list) => done(Object.fromEntries(list.map((u) => [u.user_id ?? u.id, u.email]))), () => done({}));
    } else done({});
    return () => { stopped = true; };
  }, [groupBy, team]);
  return names;
}

/** Every bucket of the range, the quiet ones as zero rows, so the chart's time axis is
 * even (at most 2,000 buckets: beyond, only the buckets with usage). */
function filled(rows, range, size) {
  if ((range.end - range.start) / size > 2000) return rows;
  const by = new Map(rows.map((r) => [r.bucket, r]));
  const out = [];
  for (let b = range.start; b < range.end; b += size) {
    out.push(by.get(b) ?? { bucket: b, requests: 0, prompt_tokens: 0, completion_tokens: 0, errors: 0, cost_usd: 0 });
  }
  return out;
}

function valueOf(row, metric) {
  return metric === "tokens" ? row.prompt_tokens + row.completion_tokens : row[metric];
}

export function UsagePage({ teams, global }) {
  const choices = teamChoices(teams, global);
  const today = isoDay(Date.now());
  const [from, setFrom] = useState(isoDay(Date.now() - 6 * DAY_MS));
  const [to, setTo] = useState(today);
  const [groupBy, setGroupBy] = useState("day");
  const [team, setTeam] = useState(choices.first);
  const [metric, setMetric] = useState("requests");
  const [exportError, setExportError] = useState(null);
  const range = rangeOf(from, to);
  const params = range && {
    group_by: groupBy,
    start: range.start,
    end: range.end,
    team_id: team || undefined,
    sort: groupBy === "day" || groupBy === "hour" ? "bucket" : "requests",
  };
  const { found, error } = usePolled(
    () => (params ? admin.usage({ ...params, limit: LIMIT }) : Promise.resolve(null)), [from, to, groupBy, team],
  );
  const names = useNames(groupBy, team, teams, global);
  // what the report on screen is grouped by (until a new one arrives, the last one's)
  const by = found?.group_by ?? groupBy;
  const timed = by === "day" || by === "hour";
  const labelOf = (bucket) => {
    if (by === "day") return dayOf(bucket);
    if (by === "hour") return `${dayOf(bucket)} ${hourOf(bucket)}`;
    if (bucket === null) return by === "model_group" ? "—" : `No ${COLUMN[by].toLowerCase()}`;
    return names[bucket] ?? bucket;
  };
  const rows = found?.data ?? [];
  const metricName = Object.fromEntries(METRICS)[metric];
  const format = metric === "cost_usd" ? usd : count;
  const bars = (timed && range ? filled(rows, range, by === "day" ? DAY_MS : 3_600_000) : rows)
    .map((r) => ({ label: labelOf(r.bucket), parts: [r ? valueOf(r, metric) : 0] }));

  async function download() {
    setExportError(null);
    try {
      const blob = await admin.usageCsv(params);
      const link = Object.assign(document.createElement("a"), {
        href: URL.createObjectURL(blob),
        download: `parley-usage-by-${groupBy}-${from}-to-${to}.csv`,
      });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    } catch (caught) {
      setExportError(caught);
    }
  }

  return html`<h1>Usage</h1>
    <div class="console-bar">
      <${Input} label="From" name="usage-from" type="date" value=${from} max=${to} onChange=${(e) => setFrom(e.currentTarget.value)} />
      <${Input} label="To" name="usage-to" type="date" value=${to} min=${from} onChange=${(e) => setTo(e.currentTarget.value)} />
      <${Select} label="Group by" name="usage-group" options=${GROUPINGS} value=${groupBy} onChange=${(e) => setGroupBy(e.currentTarget.value)} />
      ${(global || teams.length > 1) && html`<${Select} label="Team" name="usage-team" options=${choices.options} value=${team}
        onChange=${(e) => setTeam(e.currentTarget.value)} />`}
      <${Select} label="Chart" name="usage-metric" options=${METRICS} value=${metric} onChange=${(e) => setMetric(e.currentTarget.value)} />
      <button type="button" onClick=${download} disabled=${!params}>Download CSV</button>
    </div>
    ${!range && html`<p class="error" role="alert">Pick a “From” day on or before the “To” day.</p>`}
    <${ErrorText} error=${error ?? exportError} />
    ${range && found === null && !error && html`<p class="boot" role="status">Loading…</p>`}
    ${found && html`
      <p class="totals" role="status">${from === to ? dayOf(range.start) : `${dayOf(range.start)} to ${dayOf(range.end - DAY_MS)}`} (UTC): ${""
        }<strong>${count(found.totals.requests)}</strong> requests · ${""
        }<strong>${count(found.totals.prompt_tokens + found.totals.completion_tokens)}</strong> tokens · ${""
        }<strong>${count(found.totals.errors)}</strong> errors · ${""
        }<strong>${usd(found.totals.cost_usd)}</strong> spent</p>
      <${BarChart} label=${`${metricName} by ${COLUMN[by].toLowerCase()}`} bars=${bars} series=${[metricName]} format=${format}
        empty="No usage in this range." />
      ${found.next_offset !== null && html`<p class="hint">Showing the first ${count(LIMIT)} rows; the CSV has them all.</p>`}
      ${rows.length > 0 && html`<div class="table-scroll" tabindex="0"><table class="console-table" role="table">
        <caption class="visually-hidden">Usage by ${COLUMN[by].toLowerCase()}</caption>
        <thead role="rowgroup"><tr role="row"><th role="columnheader">${COLUMN[by]}</th><th role="columnheader">Requests</th>
          <th role="columnheader">Prompt tokens</th><th role="columnheader">Completion tokens</th><th role="columnheader">Cached tokens</th>
          <th role="columnheader">Errors</th><th role="columnheader">Spend</th></tr></thead>
        <tbody role="rowgroup">${rows.map((r) => html`<tr role="row" key=${String(r.bucket)}>
          <${Cell} label=${COLUMN[by]}>${timed ? labelOf(r.bucket) : html`<span title=${r.bucket ?? ""}>${labelOf(r.bucket)}</span>`}</${Cell}>
          <${Cell} label="Requests">${count(r.requests)}</${Cell}>
          <${Cell} label="Prompt tokens">${count(r.prompt_tokens)}</${Cell}>
          <${Cell} label="Completion tokens">${count(r.completion_tokens)}</${Cell}>
          <${Cell} label="Cached tokens">${count(r.cached_tokens)}</${Cell}>
          <${Cell} label="Errors">${count(r.errors)}</${Cell}>
          <${Cell} label="Spend">${usd(r.cost_usd)}</${Cell}>
        </tr>`)}</tbody>
      </table></div>`}`}`;
}
