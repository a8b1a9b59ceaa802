// "Add model" and "Edit": a model group's form in a native <dialog>. The body sent is the
// stored document with the form's fields laid over it (modelBody.js), so fields the form
// does not show (tags, proxy...) are kept as they are. The API validates (the model file's
// own schema); each problem it names is shown beside the field its path names, and a
// collapsed "Advanced" section holding one opens.
import { html, useEffect, useRef, useState } from "../../vendor/preact.js";
import { Modal } from "../components/Modal.js";
import * as admin from "./api.js";
import { DeploymentFields, Field, FieldError, rowOf, Timeouts } from "./DeploymentFields.js";
import { bodyOf, headerProblems, knownPaths } from "./modelBody.js";
import { Select } from "./widgets.js";

export { TestConnection } from "./DeploymentFields.js";

const STRATEGIES = ["ordered", "weighted", "least_inflight", "latency", "cost", "headroom", "balanced"]
  .map((s) => [s, s.replace("_", " ")]);
const PERIODS = ["daily", "weekly", "monthly", "total"].map((p) => [p, p]);

/** The API's problems ("models.g.deployments[0].api_base: must be ...; ...") by the form's
 * field they name (the nearest one up the path that is on the form); the rest under "". */
export function problemsByField(error, name, known) {
  const found = {};
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const group = new RegExp(`^models(?:\\[0\\]|\\.${escaped})\\.?`);
  const parent = (path) => path.replace(/(\.[^.[\]]+|\[\d+\])$/, "");
  for (const problem of String(error.message).split("; ")) {
    const cut = problem.indexOf(": ");
    const full = cut > 0 ? problem.slice(0, cut).replace(group, "") : "";
    let path = full;
    while (path && !known.has(path)) path = parent(path) === path ? "" : parent(path);
    const below = full.slice(path.length).replace(/^\./, ""); // a field the form does not show
    const text = path ? `${below ? `${below}: ` : ""}${problem.slice(cut + 2)}` : problem;
    found[path] = found[path] ? `${found[path]}; ${text}` : text;
  }
  return found;
}

/** The group's spend caps and default timeouts, collapsed: most groups need neither. */
function GroupAdvanced({ stored, errors }) {
  const budget = stored?.budget ?? {};
  return html`<details class="advanced">
    <summary>Advanced <span class="hint">budget, cost cap, default timeouts</span></summary>
    <fieldset class="models" aria-describedby=${errors.budget ? "console-budget-error" : undefined}>
      <legend>Budget and cost cap</legend>
      <p class="hint">Spend on this group by everyone. Both amounts empty: no budget.</p>
      <div class="grid3">
        <${Field} errors=${errors} label="Budget (USD)" name="budget.usd" type="number" min="0" step="any" defaultValue=${budget.usd ?? ""} hint="Refused past it." />
        <${Field} errors=${errors} label="Soft budget (USD)" name="budget.soft_usd" type="number" min="0" step="any" defaultValue=${budget.soft_usd ?? ""} hint="Only warns." />
        <${Select} label="Budget period" name="budget.period" options=${PERIODS} value=${budget.period ?? "monthly"} />
      </div>
      <${FieldError} id="console-budget-error" text=${errors.budget} />
      <div class="grid3">
        <${Field} errors=${errors} label="Cost cap per request (USD)" name="max_cost_usd" type="number" min="0" step="any"
          defaultValue=${stored?.max_cost_usd ?? ""} hint="Priced before the call; dearer ones are refused." />
      </div>
    </fieldset>
    <${Timeouts} prefix="" values=${stored?.timeout} errors=${errors} legend="Default timeouts"
      hint="For deployments without timeouts of their own; one left empty is the built-in value shown." />
  </details>`;
}

/** ``group``: the group being edited (as /admin/models shows it), or null to add one. */
export function ModelDialog({ group, groups, onSaved, onClose }) {
  const stored = group?.document ?? null;
  const [rows, setRows] = useState(() => (stored?.deployments ?? [{}]).map(rowOf));
  const [errors, setErrors] = useState({});
  const [busy, setBusy] = useState(false);
  const form = useRef(null);
  const title = group ? `Edit ${group.name}` : "Add model";
  const others = groups.filter((g) => g.name !== group?.name).map((g) => g.name);
  const settings = group?.settings ?? {};
  const fallbacks = new Set(group?.fallbacks ?? []);
  const known = knownPaths(rows);

  function shown(caught, body) {
    setErrors(caught.status === 400 || caught.status === 409 ? problemsByField(caught, body.name ?? "", known) : { "": caught.message });
  }

  async function submit(event) {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    const refused = headerProblems(data, rows);
    if (Object.keys(refused).length) {
      setErrors(refused);
      return;
    }
    const body = bodyOf(data, stored, rows);
    setBusy(true);
    setErrors({});
    try {
      await (group ? admin.replaceModel(group.name, body) : admin.createModel(body));
      onSaved();
      onClose();
    } catch (caught) {
      shown(caught, body);
    } finally {
      setBusy(false);
    }
  }

  // After a refusal, each "Advanced" section holding a problem opens, and the first field
  // it names takes the focus (the summary is announced).
  useEffect(() => {
    for (const problem of form.current?.querySelectorAll(".field-error") ?? []) {
      const section = problem.closest("details");
      if (section) section.open = true;
    }
    form.current?.querySelector("[aria-invalid='true']")?.focus();
  }, [errors]);

  const probe = (i) => () => {
    const body = bodyOf(new FormData(form.current), stored, rows);
    return admin.testUnsaved(body, i);
  };
  const setRow = (i, change) => setRows(rows.map((r, j) => (j === i ? { ...r, ...change } : r)));
  return html`<${Modal} label=${title} open=${true} onClose=${onClose} wide=${true}>
    <h2>${title}</h2>
    <form class="console-form" ref=${form} onSubmit=${submit} noValidate>
      ${group
        ? html`<p class="hint">Saving makes revision ${group.revision + 1}; every instance serves it within seconds, no restart.</p>`
        : html`<${Field} errors=${errors} label="Group name" name="name" required maxlength="200" placeholder="chat-fast"
            hint="What clients send as model. No spaces." />`}
      <div class="grid3">
        <${Select} label="Strategy" name="strategy" options=${STRATEGIES} value=${group?.strategy ?? "ordered"} />
        <${Field} errors=${errors} label="Retries" name="retries" type="number" min="0" max="10" step="1" defaultValue=${stored?.retries ?? ""} hint="Empty: 2." />
        <${Field} errors=${errors} label="Concurrency cap" name="max_concurrency" type="number" min="1" step="1" defaultValue=${stored?.max_concurrency ?? ""} hint="Beyond it, requests queue." />
      </div>
      <div class="grid3">
        <${Field} errors=${errors} label="Requests per minute" name="limits.rpm" type="number" min="1" step="1" defaultValue=${settings.limits?.rpm ?? ""} />
        <${Field} errors=${errors} label="Tokens per minute" name="limits.tpm" type="number" min="1" step="1" defaultValue=${settings.limits?.tpm ?? ""} />
        <${Field} errors=${errors} label="Parallel requests" name="limits.max_parallel" type="number" min="1" step="1" defaultValue=${settings.limits?.max_parallel ?? ""} />
      </div>
      ${others.length > 0 && html`<fieldset class="models" aria-describedby=${errors.fallbacks ? "console-fallbacks-error" : undefined}>
        <legend>Fallbacks</legend>
        <p class="hint">Groups tried, in this order, when every deployment of this one fails.</p>
        ${others.map((name) => html`<label class="check"><input type="checkbox" name="fallbacks" value=${name} defaultChecked=${fallbacks.has(name)} /> ${name}</label>`)}
        <${FieldError} id="console-fallbacks-error" text=${errors.fallbacks} />
      </fieldset>`}
      <fieldset class="models">
        <legend>Cache</legend>
        <label class="check"><input type="checkbox" name="cache.enabled" defaultChecked=${settings.cache?.enabled} /> Cache answers</label>
        <label class="check"><input type="checkbox" name="cache.semantic" defaultChecked=${settings.cache?.semantic} /> Also similar questions (semantic)</label>
        <${Field} errors=${errors} label="Time to live (seconds)" name="cache.ttl" type="number" min="1" step="any" defaultValue=${stored?.cache?.ttl ?? ""} hint="Empty: 3600." />
      </fieldset>
      <${GroupAdvanced} stored=${stored} errors=${errors} />
      <${FieldError} id="console-deployments-error" text=${errors.deployments} />
      ${rows.map((row, i) => html`<${DeploymentFields} key=${row.id} row=${row} i=${i} errors=${errors} probe=${probe(i)}
        removable=${rows.length > 1} onChange=${(change) => setRow(i, change)}
        onRemove=${() => setRows(rows.filter((r) => r !== row))} />`)}
      <p><button type="button" onClick=${() => setRows([...rows, rowOf()])}>Add deployment</button></p>
      ${errors[""] && html`<p class="error" role="alert">${errors[""]}</p>`}
      ${Object.keys(errors).length > 0 && !errors[""] && html`<p class="error" role="alert">Not saved: see the fields marked below their inputs.</p>`}
      <div class="dialog-bar">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary" disabled=${busy}>Save</button>
      </div>
    </form>
  </${Modal}>`;
}
