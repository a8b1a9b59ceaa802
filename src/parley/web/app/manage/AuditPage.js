// The audit log: who changed what and when (keys, teams, users, models, the cache, sign-ins
// that failed), newest first, filtered by actor, action, target and days, a page at a time.
// Read only: the API has no way to change it. A team's admins see entries about their team.
import { html, useEffect, useState } from "../../vendor/preact.js";
import { ErrorText } from "../components/ErrorText.js";
import * as admin from "./api.js";
import { textOf, whenUtc } from "./format.js";
import { teamChoices, usePolled } from "./reading.js";
import { Cell, Input, Select } from "./widgets.js";

const PAGE = 50;
const DAY_MS = 86_400_000;
const ACTIONS = [
  "key.*", "key.create", "key.rotate", "key.revoke", "key.reset_budget",
  "team.*", "team.create", "team.update", "team.member_set", "team.member_remove", "team.invite",
  "user.*", "user.update", "user.mfa_reset", "user.deleted",
  "model.*", "cache.invalidate",
  "auth.*", "auth.login_failed", "auth.login_mfa_failed", "auth.passkey_login_failed",
];

/** Who did it, as a person reads it: an email when the viewer may know it. */
function actorName(actor, people) {
  if (actor === "admin-key") return "the admin key";
  if (actor === "cli") return "the command line";
  return people[actor] ?? actor;
}

function detail(value) {
  if (!value || (typeof value === "object" && Object.keys(value).length === 0)) return "";
  return JSON.stringify(value);
}

export function AuditPage({ teams, global }) {
  const choices = teamChoices(teams, global);
  const [team, setTeam] = useState(choices.first);
  const [filters, setFilters] = useState({});
  const [cursors, setCursors] = useState([]); // the cursors of the pages before this one
  const [cursor, setCursor] = useState(null);
  const [people, setPeople] = useState({});
  useEffect(() => {
    const list = global
      ? admin.listUsers(0, 1000).then((found) => found.data.map((u) => [u.id, u.email]))
      : team ? admin.getTeam(team).then((found) => (found.members ?? []).map((m) => [m.user_id, m.email])) : Promise.resolve([]);
    list.then((pairs) => setPeople(Object.fromEntries(pairs)), () => setPeople({}));
  }, [team]);
  const { found, error } = usePolled(
    () => admin.auditLog({ ...filters, team_id: team || undefined, cursor: cursor ?? undefined, limit: PAGE }),
    [filters, team, cursor],
  );

  function apply(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const typed = textOf(form, "actor");
    // an email the viewer can see stands for its account's id (the log keeps ids)
    const byEmail = typed && Object.entries(people).find(([, email]) => email === typed);
    const from = textOf(form, "from");
    const to = textOf(form, "to");
    setFilters({
      actor: byEmail ? byEmail[0] : typed,
      action: textOf(form, "action"),
      target: textOf(form, "target"),
      start: from ? Date.parse(`${from}T00:00:00Z`) : undefined,
      end: to ? Date.parse(`${to}T00:00:00Z`) + DAY_MS : undefined,
    });
    setCursors([]);
    setCursor(null);
  }

  function clear(event) {
    event.currentTarget.form.reset();
    setFilters({});
    setCursors([]);
    setCursor(null);
  }

  const rows = found?.data ?? [];
  return html`<h1>Audit log</h1>
    <form class="console-bar audit-filters" onSubmit=${apply} aria-label="Filter the audit log">
      <${Input} label="Actor" name="actor" placeholder="email or id" maxlength="200" />
      <${Input} label="Action" name="action" list="audit-actions" placeholder="key.* or key.create" maxlength="64" />
      <datalist id="audit-actions">${ACTIONS.map((a) => html`<option key=${a} value=${a} />`)}</datalist>
      <${Input} label="Target" name="target" placeholder="an id" maxlength="128" />
      <${Input} label="From (UTC day)" name="from" type="date" />
      <${Input} label="To (UTC day)" name="to" type="date" />
      ${(global || teams.length > 1) && html`<${Select} label="Team" name="audit-team" options=${choices.options} value=${team}
        onChange=${(e) => { setTeam(e.currentTarget.value); setCursors([]); setCursor(null); }} />`}
      <button type="submit" class="primary">Filter</button>
      <button type="button" onClick=${clear}>Clear</button>
    </form>
    <${ErrorText} error=${error} />
    ${found === null && !error && html`<p class="boot" role="status">Loading…</p>`}
    ${found && rows.length === 0 && html`<p class="empty-state" role="status">No entries${Object.values(filters).some(Boolean) ? " match these filters" : ""}.</p>`}
    ${rows.length > 0 && html`<div class="table-scroll" tabindex="0"><table class="console-table" role="table">
      <caption class="visually-hidden">Audit log</caption>
      <thead role="rowgroup"><tr role="row"><th role="columnheader">When</th><th role="columnheader">Actor</th><th role="columnheader">Action</th>
        <th role="columnheader">Target</th><th role="columnheader">From</th><th role="columnheader">Detail</th></tr></thead>
      <tbody role="rowgroup">${rows.map((e) => html`<tr role="row" key=${e.id}>
        <${Cell} label="When"><span class="nowrap">${whenUtc(e.time_ms)}</span></${Cell}>
        <${Cell} label="Actor"><span title=${e.actor}>${actorName(e.actor, people)}</span></${Cell}>
        <${Cell} label="Action"><code>${e.action}</code></${Cell}>
        <${Cell} label="Target">${e.target ? html`<code>${e.target}</code>` : "—"}</${Cell}>
        <${Cell} label="From">${e.ip ?? "—"}</${Cell}>
        <${Cell} label="Detail"><span class="audit-detail">${detail(e.detail)}</span></${Cell}>
      </tr>`)}</tbody>
    </table></div>`}
    ${found && (cursors.length > 0 || found.next_cursor) && html`<nav class="dialog-bar start" aria-label="Audit log pages">
      <button type="button" disabled=${cursors.length === 0}
        onClick=${() => { setCursor(cursors[cursors.length - 1]); setCursors(cursors.slice(0, -1)); }}>Newer</button>
      <button type="button" disabled=${!found.next_cursor}
        onClick=${() => { setCursors([...cursors, cursor]); setCursor(found.next_cursor); }}>Older</button>
      <span class="hint">Page ${cursors.length + 1}</span>
    </nav>`}`;
}
