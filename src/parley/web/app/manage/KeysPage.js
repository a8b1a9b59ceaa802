// Keys: every key the viewer may manage, with its spend this period; create one (its
// secret shown once), rotate with a grace period, reset its budget, revoke.
import { html, useEffect, useState } from "../../vendor/preact.js";
import { ErrorText } from "../components/ErrorText.js";
import { Modal } from "../components/Modal.js";
import { models } from "../state.js";
import * as admin from "./api.js";
import { count, given, limits, numberOf, textOf, usd, when } from "./format.js";
import { Cell, Confirm, Input, SecretBox, Select } from "./widgets.js";

const PERIODS = [["monthly", "Monthly"], ["weekly", "Weekly"], ["daily", "Daily"], ["total", "Total (never resets)"]];

function status(key, now) {
  if (key.revoked_ms) return "Revoked";
  if (key.expires_ms && key.expires_ms <= now) return "Expired";
  if (key.previous_expires_ms && key.previous_expires_ms > now) return "Active (rotating)";
  return "Active";
}

function keyName(key) {
  return key.name ? `${key.name} (${key.prefix}…)` : `${key.prefix}…`;
}

function CreateKeyDialog({ teams, global, team, onDone, onClose }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [made, setMade] = useState(null);
  const teamOptions = global ? [["", "No team"], ...teams.map((t) => [t.id, t.name])] : teams.map((t) => [t.id, t.name]);

  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const chosen = form.getAll("models").map(String);
    const body = given({
      name: textOf(form, "name"),
      team_id: textOf(form, "team_id"),
      models: chosen.length ? chosen : undefined,
      rpm: numberOf(form, "rpm"),
      tpm: numberOf(form, "tpm"),
      max_parallel: numberOf(form, "max_parallel"),
      budget_usd: numberOf(form, "budget_usd"),
      soft_budget_usd: numberOf(form, "soft_budget_usd"),
      budget_period: textOf(form, "budget_period"),
      expires_in_days: numberOf(form, "expires_in_days"),
      priority: numberOf(form, "priority"),
      tier: textOf(form, "tier"),
      max_cost_usd: numberOf(form, "max_cost_usd"),
    });
    setBusy(true);
    setError(null);
    try {
      const created = await admin.createKey(body);
      setMade(created);
      onDone();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }

  return html`<${Modal} label=${made ? "Key created" : "Create key"} open=${true} onClose=${onClose} wide=${true}>
    ${made
      ? html`<h2>Key created</h2>
        <p>${keyName(made)}</p>
        <${SecretBox} label="New key" secret=${made.key}
          note="Copy the key now: Parley keeps only its hash and cannot show it again." />
        <div class="dialog-bar"><button type="button" class="primary" onClick=${onClose}>Done</button></div>`
      : html`<h2>Create key</h2>
        <form class="console-form" onSubmit=${submit}>
          <${Input} label="Name" name="name" maxlength="200" placeholder="billing service" />
          <${Select} label="Team" name="team_id" options=${teamOptions} value=${team ?? ""} />
          <fieldset class="models">
            <legend>Models</legend>
            <p class="hint">None ticked: the key may use every model.</p>
            ${models.value.map((name) => html`<label class="check"><input type="checkbox" name="models" value=${name} /> ${name}</label>`)}
          </fieldset>
          <div class="grid3">
            <${Input} label="Requests per minute" name="rpm" type="number" min="1" step="1" />
            <${Input} label="Tokens per minute" name="tpm" type="number" min="1" step="1" />
            <${Input} label="Parallel requests" name="max_parallel" type="number" min="1" step="1" />
          </div>
          <div class="grid3">
            <${Input} label="Budget (USD)" name="budget_usd" type="number" min="0" step="0.01" />
            <${Input} label="Soft budget (USD)" name="soft_budget_usd" type="number" min="0" step="0.01" hint="Alerts, never refuses." />
            <${Select} label="Budget period" name="budget_period" options=${PERIODS} value="monthly" />
          </div>
          <div class="grid3">
            <${Input} label="Expires in (days)" name="expires_in_days" type="number" min="0.01" step="any" hint="Empty: never." />
            <${Select} label="Priority" name="priority" value=""
              options=${[["", "Default"], ["1", "1 (first)"], ["2", "2"], ["3", "3"], ["4", "4"], ["5", "5 (last)"]]} />
            <${Input} label="Tier" name="tier" maxlength="16" />
          </div>
          <${Input} label="Most one request may cost (USD)" name="max_cost_usd" type="number" min="0.000001" step="any" />
          <${ErrorText} error=${error} />
          <div class="dialog-bar">
            <button type="button" onClick=${onClose}>Cancel</button>
            <button type="submit" class="primary" disabled=${busy}>Create key</button>
          </div>
        </form>`}
  </${Modal}>`;
}

function RotateDialog({ keyRow, onDone, onClose }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [made, setMade] = useState(null);
  async function submit(event) {
    event.preventDefault();
    const hours = numberOf(new FormData(event.currentTarget), "grace_hours") ?? 0;
    setBusy(true);
    setError(null);
    try {
      setMade(await admin.rotateKey(keyRow.id, Math.round(hours * 3600)));
      onDone();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }
  const title = `Rotate ${keyName(keyRow)}`;
  return html`<${Modal} label=${title} open=${true} onClose=${onClose}>
    <h2>${title}</h2>
    ${made
      ? html`<${SecretBox} label="New key" secret=${made.key}
          note="The new secret, shown once. Copy it now; the old one works until its grace period ends." />
        <div class="dialog-bar"><button type="button" class="primary" onClick=${onClose}>Done</button></div>`
      : html`<form class="console-form" onSubmit=${submit}>
          <${Input} label="Grace period (hours)" name="grace_hours" type="number" min="0" step="any" defaultValue="24"
            hint="The old secret keeps working this long, so its apps can move to the new one. 0 ends it now." />
          <${ErrorText} error=${error} />
          <div class="dialog-bar">
            <button type="button" onClick=${onClose}>Cancel</button>
            <button type="submit" class="primary" disabled=${busy}>Rotate</button>
          </div>
        </form>`}
  </${Modal}>`;
}

function KeyRow({ keyRow, teamName, global, now, onAction }) {
  const live = !keyRow.revoked_ms;
  const spend = keyRow.budget_usd == null
    ? usd(keyRow.spent_usd)
    : `${usd(keyRow.spent_usd)} of ${usd(keyRow.budget_usd)} ${keyRow.budget_period === "total" ? "in all" : keyRow.budget_period}`;
  return html`<tr role="row">
    <${Cell} label="Name"><strong>${keyRow.name || "Unnamed"}</strong><br /><code>${keyRow.prefix}…</code></${Cell}>
    <${Cell} label="Team">${teamName || "—"}</${Cell}>
    <${Cell} label="Scope">${keyRow.models?.length ? keyRow.models.join(", ") : "all models"}${keyRow.tier ? ` · tier ${keyRow.tier}` : ""}${keyRow.priority ? ` · priority ${keyRow.priority}` : ""}</${Cell}>
    <${Cell} label="Spend">${spend}</${Cell}>
    <${Cell} label="Limits">${limits(keyRow)}</${Cell}>
    <${Cell} label="Expires">${when(keyRow.expires_ms)}</${Cell}>
    <${Cell} label="Status">${status(keyRow, now)}</${Cell}>
    <${Cell} label="Actions">
      ${live && html`<div class="row-actions">
        <button type="button" onClick=${() => onAction("rotate", keyRow)}>Rotate</button>
        ${global && keyRow.budget_usd != null && html`<button type="button" onClick=${() => onAction("reset", keyRow)}>Reset budget</button>`}
        <button type="button" class="danger" onClick=${() => onAction("revoke", keyRow)}>Revoke</button>
      </div>`}
    </${Cell}>
  </tr>`;
}

export function KeysPage({ teams, global }) {
  const [team, setTeam] = useState(global ? "" : teams[0]?.id ?? "");
  const [keys, setKeys] = useState(null);
  const [error, setError] = useState(null);
  const [dialog, setDialog] = useState(null); // {kind, key}
  const names = Object.fromEntries(teams.map((t) => [t.id, t.name]));

  function reload() {
    setError(null);
    return admin.listKeys(team || undefined).then((found) => setKeys(found.data), setError);
  }
  useEffect(() => { reload(); }, [team]);

  const close = () => setDialog(null);
  const now = Date.now();
  const teamOptions = global ? [["", "All keys"], ...teams.map((t) => [t.id, t.name])] : teams.map((t) => [t.id, t.name]);
  const count_ = keys?.length ?? 0;
  return html`<h1>Keys</h1>
    <div class="console-bar">
      <${Select} label="Team" name="keys-team" options=${teamOptions} value=${team}
        onChange=${(e) => setTeam(e.currentTarget.value)} />
      <button type="button" class="primary" onClick=${() => setDialog({ kind: "create" })}>Create key</button>
    </div>
    <${ErrorText} error=${error} />
    ${keys === null && !error && html`<p class="boot" role="status">Loading…</p>`}
    ${keys && keys.length === 0 && html`<p class="empty-state">No keys yet.</p>`}
    ${keys && keys.length > 0 && html`<div class="table-scroll" tabindex="0"><table class="console-table" role="table">
      <caption class="visually-hidden">API keys (${count(count_)})</caption>
      <thead role="rowgroup"><tr role="row"><th role="columnheader">Name</th><th role="columnheader">Team</th><th role="columnheader">Scope</th><th role="columnheader">Spend</th><th role="columnheader">Limits</th><th role="columnheader">Expires</th><th role="columnheader">Status</th><th role="columnheader"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody role="rowgroup">${keys.map((k) => html`<${KeyRow} key=${k.id} keyRow=${k} teamName=${names[k.team_id]} global=${global} now=${now}
        onAction=${(kind, keyRow) => setDialog({ kind, key: keyRow })} />`)}</tbody>
    </table></div>`}
    ${dialog?.kind === "create" && html`<${CreateKeyDialog} teams=${teams} global=${global} team=${team} onDone=${reload} onClose=${close} />`}
    ${dialog?.kind === "rotate" && html`<${RotateDialog} keyRow=${dialog.key} onDone=${reload} onClose=${close} />`}
    ${dialog?.kind === "revoke" && html`<${Confirm} title=${`Revoke ${keyName(dialog.key)}`} action="Revoke"
      onConfirm=${() => admin.revokeKey(dialog.key.id).then(reload)} onClose=${close}>
      <p>Every request with this key is refused from now on, on every instance. This cannot be undone.</p>
    </${Confirm}>`}
    ${dialog?.kind === "reset" && html`<${Confirm} title=${`Reset the budget of ${keyName(dialog.key)}`} action="Reset budget" danger=${false}
      onConfirm=${() => admin.resetKeyBudget(dialog.key.id).then(reload)} onClose=${close}>
      <p>This period's spend starts again from zero, now. The usage records stay.</p>
    </${Confirm}>`}`;
}
