// Cache: hit rates per model group (exact and semantic, from the usage rollups, so every
// instance's lookups), and drop cached answers by namespace (a team's, a key's, a user's,
// or shared) or by model group, or both. A team's admins see and drop only their team's.
import { html, useState } from "../../vendor/preact.js";
import { ErrorText } from "../components/ErrorText.js";
import { models } from "../state.js";
import * as admin from "./api.js";
import { count, percent, textOf } from "./format.js";
import { teamChoices, usePolled } from "./reading.js";
import { Cell, Input, Select } from "./widgets.js";

const WINDOWS = [["hour", "Last hour"], ["day", "Last day"], ["week", "Last week"]];

function HitRates({ teams, global }) {
  const choices = teamChoices(teams, global);
  const [window_, setWindow] = useState("day");
  const [team, setTeam] = useState(choices.first);
  const { found, error } = usePolled(
    () => admin.cacheHitRates({ window: window_, team_id: team || undefined }), [window_, team], 30_000,
  );
  const rows = found ? [...found.data, { ...found.totals, model_group: null }] : [];
  return html`<h2>Hit rates</h2>
    <div class="console-bar">
      <${Select} label="Range" name="cache-window" options=${WINDOWS} value=${window_} onChange=${(e) => setWindow(e.currentTarget.value)} />
      ${(global || teams.length > 1) && html`<${Select} label="Team" name="cache-team" options=${choices.options} value=${team}
        onChange=${(e) => setTeam(e.currentTarget.value)} />`}
    </div>
    <${ErrorText} error=${error} />
    ${found === null && !error && html`<p class="boot" role="status">Loading…</p>`}
    ${found && found.data.length === 0 && html`<p class="empty-state">No cache lookups in this range.</p>`}
    ${found && found.data.length > 0 && html`<div class="table-scroll" tabindex="0"><table class="console-table" role="table">
      <caption class="visually-hidden">Cache hit rates</caption>
      <thead role="rowgroup"><tr role="row"><th role="columnheader">Model group</th><th role="columnheader">Lookups</th>
        <th role="columnheader">Hit rate</th><th role="columnheader">Exact hits</th><th role="columnheader">Semantic hits</th><th role="columnheader">Misses</th></tr></thead>
      <tbody role="rowgroup">${rows.map((r) => html`<tr role="row" key=${r.model_group ?? "*"} class=${r.model_group === null ? "total" : undefined}>
        <${Cell} label="Model group">${r.model_group === null ? html`<strong>Every group</strong>` : r.model_group}</${Cell}>
        <${Cell} label="Lookups">${count(r.lookups)}</${Cell}>
        <${Cell} label="Hit rate">${percent(r.hit_rate)}</${Cell}>
        <${Cell} label="Exact hits">${count(r.hits)} (${percent(r.exact_hit_rate)})</${Cell}>
        <${Cell} label="Semantic hits">${count(r.semantic_hits)} (${percent(r.semantic_hit_rate)})</${Cell}>
        <${Cell} label="Misses">${count(r.misses)}</${Cell}>
      </tr>`)}</tbody>
    </table></div>
    <p class="hint">Lookups are hits, semantic hits and misses; requests that bypassed the cache (<code>no-cache</code>, a hot temperature) are not counted. Every instance's, from the usage records.</p>`}`;
}

export function CachePage({ teams, global }) {
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  const groups = [["", "Every model group"], ...models.value.map((m) => [m, m])];

  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const namespace = textOf(form, "namespace");
    const model = textOf(form, "model");
    setError(null);
    setDone(null);
    try {
      const { dropped } = await admin.invalidateCache({ namespace, model });
      const what = [namespace && `namespace ${namespace}`, model && `model group ${model}`].filter(Boolean).join(" and ");
      setDone(`Dropped ${dropped} cached ${dropped === 1 ? "answer" : "answers"} (${what || "everything"}).`);
    } catch (caught) {
      setError(caught);
    }
  }

  return html`<h1>Cache</h1>
    <${HitRates} teams=${teams} global=${global} />
    <h2>Invalidate</h2>
    <p>Cached answers are kept per namespace: <code>shared</code>, or one team's, key's or user's
      (see the <code>x-parley-cache</code> header in the docs). Dropping a namespace drops its sub-namespaces too.</p>
    <form class="console-form narrow" onSubmit=${submit}>
      ${global
        ? html`<${Input} label="Namespace" name="namespace" placeholder="team.<id>, key.<id>, shared.docs"
            hint="Empty: every namespace (then pick a model group)." maxlength="80" />`
        : html`<${Select} label="Namespace" name="namespace"
            options=${teams.map((t) => [`team.${t.id}`, `Team ${t.name}`])} value=${teams[0] ? `team.${teams[0].id}` : ""} />`}
      <${Select} label="Model group" name="model" options=${groups} value="" />
      <${ErrorText} error=${error} />
      <div class="dialog-bar start">
        <button type="submit" class="danger">Invalidate</button>
        <span role="status">${done ?? ""}</span>
      </div>
    </form>`;
}
