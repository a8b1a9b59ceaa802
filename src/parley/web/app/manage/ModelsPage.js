// Models (global admins): every model group, the model file's (read-only, "from
// parley.yaml") and the stored ones (added, edited, disabled, deleted and rolled back here,
// served by every instance without a restart), each deployment with its price and its
// live health from /admin/deployments (the Deployments page's data, refreshed with it);
// under them, the deleted groups, each with Restore.
import { html, useEffect, useState } from "../../vendor/preact.js";
import { loadModels } from "../chat.js";
import { ErrorText } from "../components/ErrorText.js";
import { Modal } from "../components/Modal.js";
import { user } from "../state.js";
import * as admin from "./api.js";
import { useDeploymentHealth } from "./DeploymentsPage.js";
import { breaker, count, limits, ms, percent, when } from "./format.js";
import { ModelDialog, TestConnection } from "./ModelDialog.js";
import { Cell, Confirm } from "./widgets.js";

const ACTIONS = {
  create: "created", update: "edited", disable: "disabled", enable: "enabled", delete: "deleted",
  deployment_disable: "a deployment disabled", deployment_enable: "a deployment enabled", rollback: "rolled back",
};

/** Per million tokens; "catalog" when Parley's price catalog decides. */
function price(p) {
  if (!p || (p.input_per_mtok == null && p.output_per_mtok == null)) return "catalog";
  const usd = (v) => (v == null ? "catalog" : `$${v}`);
  return html`<span class="nowrap">in ${usd(p.input_per_mtok)}</span> · <span class="nowrap">out ${usd(p.output_per_mtok)}</span>`;
}

function cache(c) {
  if (!c?.enabled) return "off";
  return `${c.semantic ? `exact + semantic (≥ ${c.threshold})` : "exact"}, ${count(c.ttl)} s${c.namespace ? ` · ${c.namespace}` : ""}`;
}

function queue(g, health) {
  const q = health?.groups.find((x) => x.group === g.name);
  if (!q || q.capacity == null) return "no cap";
  return `${count(q.in_use)} of ${count(q.capacity)} in use · ${count(q.waiting)} waiting`;
}

function DeploymentRow({ group, d, health, onChanged }) {
  const h = health?.data.find((x) => x.deployment === d.label);
  const [error, setError] = useState(null);
  const toggle = () => admin.setDeploymentEnabled(group.name, d.index, !d.enabled).then(onChanged, setError);
  return html`<tr role="row" class=${h && h.breaker !== "closed" ? "alarm" : undefined}>
    <${Cell} label="Deployment"><strong>${d.label}</strong><br /><span class="hint">${d.provider} · ${d.model}</span><br />
      <code class="api-base">${d.api_base ?? "the provider's default API base"}</code>
      <div class="row-actions">
        <${TestConnection} run=${() => admin.testDeployment(group.name, d.index)} />
        ${!group.read_only && html`<button type="button" onClick=${toggle}>${d.enabled ? "Disable" : "Enable"}</button>`}
      </div>
      <${ErrorText} error=${error} /></${Cell}>
    <${Cell} label="Price / 1M tokens">${price(d.price)}</${Cell}>
    <${Cell} label="State">${d.enabled ? "Enabled" : html`<strong>Disabled</strong>`}${d.weight != null && d.weight !== 1 ? ` · weight ${d.weight}` : ""}</${Cell}>
    <${Cell} label="Breaker">${h ? html`<span class=${`breaker ${h.breaker}`}>${breaker(h.breaker)}</span>` : "—"}</${Cell}>
    <${Cell} label="EWMA latency">${ms(h?.ewma_latency_ms)}</${Cell}>
    <${Cell} label="Errors (1 min)">${percent(h?.error_rate_last_minute)}</${Cell}>
    <${Cell} label="In flight">${count(h?.in_flight)}</${Cell}>
  </tr>`;
}

/** Users' emails by id (null until read; empty if they cannot be), to say who changed what. */
function useEmails() {
  const [users, setUsers] = useState(null);
  useEffect(() => {
    admin.listUsers(0, 1000).then((body) => setUsers(Object.fromEntries(body.data.map((u) => [u.id, u.email]))), () => setUsers({}));
  }, []);
  return users;
}

function who(actor, users) {
  if (actor === "admin-key") return "the admin key";
  if (actor === user.value?.id) return "you";
  return users?.[actor] ?? actor;
}

function RevisionsDialog({ group, onChanged, onClose }) {
  const [found, setFound] = useState(null);
  const users = useEmails();
  const [error, setError] = useState(null);
  const load = () => admin.modelRevisions(group.name).then((body) => setFound(body.data), setError);
  useEffect(() => { load(); }, []);
  async function rollBack(revision) {
    setError(null);
    try {
      await admin.rollbackModel(group.name, revision);
      await load();
      onChanged();
    } catch (caught) {
      setError(caught);
    }
  }
  const title = `Revisions of ${group.name}`;
  const newest = found?.[0]?.revision;
  return html`<${Modal} label=${title} open=${true} onClose=${onClose} wide=${true}>
    <h2>${title}</h2>
    <p class="hint">Rolling back restores that revision as a new one; nothing is lost.</p>
    <${ErrorText} error=${error} />
    ${found === null && !error && html`<p class="boot" role="status">Loading…</p>`}
    ${found && html`<div class="table-scroll" tabindex="0"><table class="console-table" role="table">
      <caption class="visually-hidden">${title}</caption>
      <thead role="rowgroup"><tr role="row"><th role="columnheader">Revision</th><th role="columnheader">When</th><th role="columnheader">Who</th><th role="columnheader">What</th><th role="columnheader"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody role="rowgroup">${found.map((r) => html`<tr role="row" key=${r.revision}>
        <${Cell} label="Revision">${r.revision}${r.revision === newest ? " (current)" : ""}</${Cell}>
        <${Cell} label="When">${when(r.time_ms)}</${Cell}>
        <${Cell} label="Who">${who(r.actor, users)}</${Cell}>
        <${Cell} label="What">${ACTIONS[r.action] ?? r.action}${r.enabled ? "" : " (group disabled)"}</${Cell}>
        <${Cell} label="Actions">${r.revision !== newest && r.document && html`<button type="button"
          onClick=${() => rollBack(r.revision)}>Roll back</button>`}</${Cell}>
      </tr>`)}</tbody>
    </table></div>`}
    <div class="dialog-bar"><button type="button" onClick=${onClose}>Close</button></div>
  </${Modal}>`;
}

function Group({ group, index, health, onAction, onChanged }) {
  const s = group.settings ?? {};
  const heading = `model-group-${index}`;
  const fallbacks = [...(group.fallbacks ?? []), ...(s.context_window_fallbacks ?? []).map((f) => `${f} (context)`),
    ...(s.content_policy_fallbacks ?? []).map((f) => `${f} (content policy)`)];
  return html`<section class="model-group" aria-labelledby=${heading}>
    <div class="model-head">
      <h2 id=${heading}>${group.name}</h2>
      ${group.read_only
        ? html`<span class="tag">${group.label}</span>`
        : html`<span class="tag">stored · revision ${group.revision}</span>`}
      ${!group.enabled && html`<span class="tag off">disabled</span>`}
      ${!group.read_only && html`<div class="row-actions">
        <button type="button" onClick=${() => onAction("edit", group)}>Edit</button>
        <button type="button" onClick=${() => onAction("revisions", group)}>Revisions</button>
        <button type="button" onClick=${() => onAction("enabled", group)}>${group.enabled ? "Disable group" : "Enable group"}</button>
        <button type="button" class="danger" onClick=${() => onAction("delete", group)}>Delete</button>
      </div>`}
    </div>
    ${group.read_only && html`<p class="hint">Read-only here: the model file declares it, and wins. Change it in parley.yaml.</p>`}
    ${group.problems?.length > 0 && html`<p class="error">Not served on this instance: ${group.problems.join("; ")}</p>`}
    <dl class="model-facts">
      <div><dt>Strategy</dt><dd>${group.strategy?.replace("_", " ") ?? "—"}</dd></div>
      <div><dt>Fallbacks</dt><dd>${fallbacks.length ? fallbacks.join(", ") : "none"}</dd></div>
      <div><dt>Limits</dt><dd>${limits(s.limits ?? {})}</dd></div>
      <div><dt>Queue</dt><dd>${queue(group, health)}</dd></div>
      <div><dt>Cache</dt><dd>${cache(s.cache)}</dd></div>
      <div><dt>Retries</dt><dd>${s.retries ?? "—"}</dd></div>
      ${s.budget && html`<div><dt>Budget</dt><dd>$${s.budget.usd ?? "—"} ${s.budget.period}</dd></div>`}
    </dl>
    <div class="table-scroll" tabindex="0"><table class="console-table" role="table">
      <caption class="visually-hidden">Deployments of ${group.name}</caption>
      <thead role="rowgroup"><tr role="row"><th role="columnheader">Deployment</th><th role="columnheader">Price / 1M tokens</th><th role="columnheader">State</th>
        <th role="columnheader">Breaker</th><th role="columnheader">EWMA latency</th><th role="columnheader">Errors (1 min)</th><th role="columnheader">In flight</th></tr></thead>
      <tbody role="rowgroup">${group.deployments.map((d) => html`<${DeploymentRow} key=${d.label} group=${group} d=${d} health=${health} onChanged=${onChanged} />`)}</tbody>
    </table></div>
  </section>`;
}

/** Deleted stored groups: their revisions stay, so one comes back as it was before its
 * deletion (a rollback to that revision: validated again, and a new revision). */
function DeletedGroups({ found, onRestored }) {
  const [error, setError] = useState(null);
  const users = useEmails();
  async function restore(d) {
    setError(null);
    try {
      await admin.rollbackModel(d.name, d.restorable_revision);
      await onRestored();
    } catch (caught) {
      setError(caught);
    }
  }
  return html`<section class="model-group deleted-groups" aria-labelledby="deleted-groups">
    <div class="model-head"><h2 id="deleted-groups">Deleted groups</h2></div>
    <p class="hint">Not served. Restore brings a group back as it was before its deletion, as a new revision.</p>
    <${ErrorText} error=${error} />
    <div class="table-scroll" tabindex="0"><table class="console-table" role="table">
      <caption class="visually-hidden">Deleted groups</caption>
      <thead role="rowgroup"><tr role="row"><th role="columnheader">Model group</th><th role="columnheader">Deleted</th>
        <th role="columnheader">By</th><th role="columnheader"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody role="rowgroup">${found.map((d) => html`<tr role="row" key=${d.name}>
        <${Cell} label="Model group"><strong>${d.name}</strong></${Cell}>
        <${Cell} label="Deleted">${when(d.deleted_ms)}</${Cell}>
        <${Cell} label="By">${who(d.deleted_by, users)}</${Cell}>
        <${Cell} label="Actions"><button type="button" aria-label=${`Restore ${d.name}`}
          onClick=${() => restore(d)}>Restore</button></${Cell}>
      </tr>`)}</tbody>
    </table></div>
  </section>`;
}

export function ModelsPage() {
  const [groups, setGroups] = useState(null);
  const [error, setError] = useState(null);
  const [dialog, setDialog] = useState(null); // {kind, group}
  const [health, healthError, rereadHealth] = useDeploymentHealth();
  const [deleted, setDeleted] = useState([]);
  const reload = () => Promise.all([
    admin.listModels().then((body) => { setGroups(body.data); setError(null); }, setError),
    admin.deletedModels().then((body) => setDeleted(body.data), setError),
  ]);
  useEffect(() => { reload(); }, []);
  // A change is served at once: the chat's model picker hears of it too.
  const changed = () => { rereadHealth(); return Promise.all([reload(), loadModels().catch(() => {})]); };

  function onAction(kind, group) {
    if (kind === "enabled") admin.setModelEnabled(group.name, !group.enabled).then(changed, setError);
    else setDialog({ kind, group });
  }
  const close = () => setDialog(null);
  return html`<h1>Models</h1>
    <div class="console-bar">
      <p class="hint grow">Changes here reach every instance within seconds, without a restart. Health is this
        instance's, refreshed every few seconds; <a href="/manage/deployments">Deployments</a> lists it all, open breakers first.</p>
      <button type="button" class="primary" onClick=${() => setDialog({ kind: "add" })}>Add model</button>
    </div>
    <${ErrorText} error=${error ?? healthError} />
    ${groups === null && !error && html`<p class="boot" role="status">Loading…</p>`}
    ${groups && groups.length === 0 && html`<p class="empty-state">No model groups yet: add one, or declare them in parley.yaml.</p>`}
    ${groups?.map((g, i) => html`<${Group} key=${g.name} group=${g} index=${i} health=${health} onAction=${onAction} onChanged=${changed} />`)}
    ${deleted.length > 0 && html`<${DeletedGroups} found=${deleted} onRestored=${changed} />`}
    ${(dialog?.kind === "add" || dialog?.kind === "edit") && html`<${ModelDialog} group=${dialog.group ?? null}
      groups=${groups ?? []} onSaved=${changed} onClose=${close} />`}
    ${dialog?.kind === "revisions" && html`<${RevisionsDialog} group=${dialog.group} onChanged=${changed} onClose=${close} />`}
    ${dialog?.kind === "delete" && html`<${Confirm} title=${`Delete ${dialog.group.name}`} action="Delete"
      onConfirm=${() => admin.deleteModel(dialog.group.name).then(changed)} onClose=${close}>
      <p>Requests for ${dialog.group.name} are refused from now on, on every instance. Requests already running finish.
        Its revisions stay: it is listed under Deleted groups, and Restore brings it back.</p>
    </${Confirm}>`}`;
}
