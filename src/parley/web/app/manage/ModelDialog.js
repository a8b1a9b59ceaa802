// "Add model" and "Edit": a model group's form in a native <dialog>. The body sent is the
// stored document with the form's fields laid over it, so fields the form does not show
// (timeouts, headers, tags...) are kept as they are. The API validates (the model file's
// own schema); each problem it names is shown beside the field its path names.
import { html, useEffect, useRef, useState } from "../../vendor/preact.js";
import { Modal } from "../components/Modal.js";
import * as admin from "./api.js";
import { ms, numberOf, textOf } from "./format.js";
import { Input, Select } from "./widgets.js";

const STRATEGIES = ["ordered", "weighted", "least_inflight", "latency", "cost", "headroom", "balanced"]
  .map((s) => [s, s.replace("_", " ")]);
const PROVIDERS = [["openai", "OpenAI"], ["azure", "Azure OpenAI"], ["anthropic", "Anthropic"],
  ["gemini", "Gemini"], ["openai_compatible", "OpenAI-compatible"], ["bedrock", "Bedrock"]];
const KEY_SOURCES = [["env", "Environment variable"], ["secret", "Secret, encrypted"], ["none", "None"]];
const ENV = "os.environ/";
const HINT = "…"; // how the API shows a stored secret: "…abcd"

/** Set ``key`` to ``value``, or remove it when the value is empty (the schema's default). */
function put(target, key, value) {
  if (value === undefined || value === false || (Array.isArray(value) && value.length === 0)) delete target[key];
  else target[key] = value;
}

/** ``target[key]`` with ``fields`` laid over it; removed when nothing is left. */
function putAll(target, key, fields) {
  const merged = { ...(target[key] ?? {}) };
  for (const [name, value] of Object.entries(fields)) put(merged, name, value);
  put(target, key, Object.keys(merged).length ? merged : undefined);
}

function sourceOf(apiKey) {
  if (!apiKey) return "none";
  return apiKey.startsWith(ENV) ? "env" : "secret";
}

/** The group as the API takes it, from the form and the stored document under it. */
function bodyOf(form, stored, rows) {
  const body = structuredClone(stored ?? {});
  put(body, "name", textOf(form, "name") ?? body.name);
  put(body, "strategy", textOf(form, "strategy"));
  put(body, "fallbacks", form.getAll("fallbacks").map(String));
  put(body, "retries", numberOf(form, "retries"));
  put(body, "max_concurrency", numberOf(form, "max_concurrency"));
  putAll(body, "limits", { rpm: numberOf(form, "limits.rpm"), tpm: numberOf(form, "limits.tpm"), max_parallel: numberOf(form, "limits.max_parallel") });
  putAll(body, "cache", { enabled: form.has("cache.enabled"), ttl: numberOf(form, "cache.ttl"), semantic: form.has("cache.semantic") });
  body.deployments = rows.map((row, i) => {
    const at = (field) => `deployments[${i}].${field}`;
    const d = structuredClone(row.original);
    for (const field of ["provider", "model", "api_base", "name"]) put(d, field, textOf(form, at(field)));
    const typed = textOf(form, at("api_key"));
    if (row.source === "none") delete d.api_key;
    else if (row.source === "env") put(d, "api_key", typed && (typed.startsWith(ENV) ? typed : ENV + typed));
    else if (typed) d.api_key = typed;
    else if (!String(d.api_key ?? "").startsWith(HINT)) delete d.api_key; // keep a stored secret, nothing else
    putAll(d, "price", { input_per_mtok: numberOf(form, at("price.input_per_mtok")), output_per_mtok: numberOf(form, at("price.output_per_mtok")) });
    return d;
  });
  return body;
}

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

function FieldError({ id, text }) {
  return text ? html`<p class="error field-error" id=${id}>${text}</p>` : null;
}

/** An input with the API's problem with it, if it named one. */
const Field = ({ errors, name, ...rest }) => html`<${Input} name=${name} error=${errors[name]} ...${rest} />`;

/** A button that runs a connection test and says how it went, in a live region. */
export function TestConnection({ run, label = "Test connection" }) {
  const [state, setState] = useState(null); // null | "busy" | result | ApiError
  async function test() {
    setState("busy");
    try { setState(await run()); } catch (caught) { setState({ ok: false, error: caught }); }
  }
  let said = "";
  if (state === "busy") said = "Testing…";
  else if (state?.ok) said = `Connected: answered in ${ms(state.latency_ms)}.`;
  else if (state) said = `Failed: ${state.error?.status ? `${state.error.status} ` : ""}${state.error?.message ?? "no answer"}`;
  return html`<span class="test-connection">
    <button type="button" onClick=${test} disabled=${state === "busy"}>${label}</button>
    <span role="status" class=${state && state !== "busy" ? (state.ok ? "ok" : "error") : "hint"}>${said}</span>
  </span>`;
}

function DeploymentFields({ row, i, errors, onSource, onRemove, removable, probe }) {
  const at = (field) => `deployments[${i}].${field}`;
  const d = row.original;
  const stored = String(d.api_key ?? "").startsWith(HINT) ? d.api_key : null;
  const providers = PROVIDERS.some(([p]) => p === d.provider) || !d.provider ? PROVIDERS : [...PROVIDERS, [d.provider, d.provider]];
  return html`<fieldset class="deployment" aria-describedby=${errors[`deployments[${i}]`] ? `console-deployments-${i}-error` : undefined}>
    <legend>Deployment ${i + 1}</legend>
    <${FieldError} id=${`console-deployments-${i}-error`} text=${errors[`deployments[${i}]`]} />
    <div class="grid3">
      <${Select} label="Provider" name=${at("provider")} options=${providers} value=${d.provider ?? "openai"} />
      <${Field} errors=${errors} label="Model" name=${at("model")} defaultValue=${d.model ?? ""} required placeholder="gpt-4o-mini" />
      <${Field} errors=${errors} label="Name (optional)" name=${at("name")} defaultValue=${d.name ?? ""} hint="Unique; default group/provider/model." />
    </div>
    <${Field} errors=${errors} label="API base" name=${at("api_base")} defaultValue=${d.api_base ?? ""}
      placeholder="https://api.openai.com/v1" hint="Empty: the provider's own." />
    <div class="grid3">
      <${Select} label="API key from" name=${at("key_source")} options=${KEY_SOURCES} value=${row.source}
        onChange=${(e) => onSource(e.currentTarget.value)} />
      ${row.source !== "none" && html`<div class="span2"><${Field} errors=${errors} key=${row.source}
        label=${row.source === "env" ? "Variable name" : "API key"} name=${at("api_key")} autocomplete="off" spellcheck="false"
        type=${row.source === "secret" ? "password" : "text"}
        defaultValue=${row.source === "env" && d.api_key?.startsWith(ENV) ? d.api_key.slice(ENV.length) : ""}
        placeholder=${row.source === "env" ? "OPENAI_API_KEY" : stored ? `stored: ${stored}` : ""}
        hint=${row.source === "env" ? "Read from each instance's environment (os.environ/NAME)." : stored
          ? "Leave empty to keep the stored secret. It is never shown again."
          : "Encrypted before it is stored; never shown again (its last four characters at most)."} /></div>`}
    </div>
    <div class="grid3">
      <${Field} errors=${errors} label="Input price (USD / 1M tokens)" name=${at("price.input_per_mtok")} type="number" min="0" step="any" defaultValue=${d.price?.input_per_mtok ?? ""} />
      <${Field} errors=${errors} label="Output price (USD / 1M tokens)" name=${at("price.output_per_mtok")} type="number" min="0" step="any" defaultValue=${d.price?.output_per_mtok ?? ""} />
    </div>
    <div class="row-actions">
      <${TestConnection} run=${probe} />
      ${removable && html`<button type="button" class="danger" onClick=${onRemove}>Remove deployment ${i + 1}</button>`}
    </div>
  </fieldset>`;
}

let nextRow = 0;
const rowOf = (original = {}) => ({ id: nextRow++, original, source: original.api_key !== undefined ? sourceOf(original.api_key) : "env" });

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
  const known = new Set(["name", "strategy", "fallbacks", "retries", "max_concurrency", "limits.rpm", "limits.tpm",
    "limits.max_parallel", "cache.ttl", "deployments",
    ...rows.flatMap((_, i) => [`deployments[${i}]`, ...["model", "name", "api_base", "api_key", "price.input_per_mtok", "price.output_per_mtok"].map((f) => `deployments[${i}].${f}`)])]);

  function shown(caught, body) {
    setErrors(caught.status === 400 || caught.status === 409 ? problemsByField(caught, body.name ?? "", known) : { "": caught.message });
  }

  async function submit(event) {
    event.preventDefault();
    const body = bodyOf(new FormData(event.currentTarget), stored, rows);
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

  // After a refusal, the first field it names takes the focus (the summary is announced).
  useEffect(() => { form.current?.querySelector("[aria-invalid='true']")?.focus(); }, [errors]);

  const probe = (i) => () => {
    const body = bodyOf(new FormData(form.current), stored, rows);
    return admin.testUnsaved(body, i);
  };
  const setSource = (i, source) => setRows(rows.map((r, j) => (j === i ? { ...r, source } : r)));
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
      <${FieldError} id="console-deployments-error" text=${errors.deployments} />
      ${rows.map((row, i) => html`<${DeploymentFields} key=${row.id} row=${row} i=${i} errors=${errors} probe=${probe(i)}
        removable=${rows.length > 1} onSource=${(source) => setSource(i, source)}
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
