// One deployment in the model dialog: provider, model, where and how it is reached (the
// fields of the selected provider only: Azure's API version, Bedrock's region and AWS
// keys), prices, and a collapsed "Advanced" section (timeouts, headers, routing weights).
// Inputs are uncontrolled (a re-render for an error must not undo what was typed); the
// row's state holds only what changes the shape of the form.
import { html, useState } from "../../vendor/preact.js";
import { ms } from "./format.js";
import { credentialsOf, ENV, HINT, headerField, sourceFor } from "./modelBody.js";
import { Input, Select } from "./widgets.js";

const PROVIDERS = [["openai", "OpenAI"], ["azure", "Azure OpenAI"], ["anthropic", "Anthropic"],
  ["gemini", "Gemini"], ["openai_compatible", "OpenAI-compatible"], ["bedrock", "Bedrock"]];
/** Each provider's API base and key variable, as placeholders: an example, not a default. */
const BASES = { openai: "https://api.openai.com/v1", azure: "https://NAME.openai.azure.com", anthropic: "https://api.anthropic.com",
  gemini: "https://generativelanguage.googleapis.com", openai_compatible: "http://localhost:8000/v1", bedrock: "https://bedrock-runtime.REGION.amazonaws.com" };
const KEY_VARIABLES = { azure: "AZURE_OPENAI_API_KEY", anthropic: "ANTHROPIC_API_KEY", gemini: "GEMINI_API_KEY",
  openai_compatible: "LOCAL_API_KEY", bedrock: "AWS_BEARER_TOKEN_BEDROCK" };
const BASE_HINTS = { azure: "Required: the resource's endpoint.", openai_compatible: "Required: the server's /v1 URL.",
  bedrock: "Empty: the region's runtime endpoint." };
const KEY_SOURCES = [["env", "Environment variable"], ["secret", "Secret, encrypted"], ["none", "None"]];

/** Each secret field's words: its label, and the variable a placeholder suggests. */
const CREDENTIALS = {
  api_key: { label: "API key", variable: "OPENAI_API_KEY" },
  azure_ad_token: { label: "Azure AD token", variable: "AZURE_AD_TOKEN" },
  aws_access_key_id: { label: "Access key ID", variable: "AWS_ACCESS_KEY_ID" },
  aws_secret_access_key: { label: "Secret access key", variable: "AWS_SECRET_ACCESS_KEY" },
  aws_session_token: { label: "Session token", variable: "AWS_SESSION_TOKEN" },
};

export function FieldError({ id, text }) {
  return text ? html`<p class="error field-error" id=${id}>${text}</p>` : null;
}

/** An input with the API's problem with it, if it named one. */
export const Field = ({ errors, name, ...rest }) => html`<${Input} name=${name} error=${errors[name]} ...${rest} />`;

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

/** A secret field: where it comes from (a variable, a secret typed here, none) and its
 * value. A stored secret is never shown: the API sends its hint, kept if left empty. */
function Credential({ row, i, field, errors, onSource, hint }) {
  const name = `deployments[${i}].${field}`;
  const { label } = CREDENTIALS[field];
  const variable = field === "api_key" ? KEY_VARIABLES[row.provider] ?? CREDENTIALS.api_key.variable : CREDENTIALS[field].variable;
  const source = sourceFor(row, field);
  const value = String(row.original[field] ?? "");
  const stored = value.startsWith(HINT) ? value : null;
  const env = source === "env";
  return html`<div class="grid3">
    <${Select} label=${`${label} from`} name=${`deployments[${i}].${field}_source`} options=${KEY_SOURCES} value=${source}
      onChange=${(e) => onSource(field, e.currentTarget.value)} />
    ${source !== "none" && html`<div class="span2"><${Field} errors=${errors} key=${source}
      label=${env ? (field === "api_key" ? "Variable name" : `${label} variable`) : label} name=${name}
      autocomplete="off" spellcheck="false" type=${env ? "text" : "password"}
      defaultValue=${env && value.startsWith(ENV) ? value.slice(ENV.length) : ""}
      placeholder=${env ? variable : stored ? `stored: ${stored}` : ""}
      hint=${env ? "Read from each instance's environment (os.environ/NAME)." : stored
        ? "Leave empty to keep the stored secret. It is never shown again."
        : "Encrypted before it is stored; never shown again (its last four characters at most)."} /></div>`}
    ${hint && source === "none" && html`<p class="hint span2 credential-note">${hint}</p>`}
  </div>`;
}

/** ``extra_headers`` as rows of name and value. */
function Headers({ row, i, errors, onChange }) {
  const problem = errors[`deployments[${i}].extra_headers`];
  const errorId = `console-deployments-${i}-headers-error`;
  const next = row.headers.reduce((top, h) => Math.max(top, h.id + 1), 0);
  return html`<fieldset class="models headers" aria-describedby=${problem ? errorId : undefined}>
    <legend>Headers</legend>
    <p class="hint">Sent with every request. One named like a credential (Authorization, …key, …token) is encrypted, and shown as its last four characters.</p>
    ${row.headers.map((h, j) => html`<div class="header-row" key=${h.id}>
      <${Input} label=${`Header ${j + 1} name`} name=${headerField(i, j, "name")} defaultValue=${h.name} autocomplete="off" spellcheck="false" placeholder="X-Team" />
      <${Input} label=${`Header ${j + 1} value`} name=${headerField(i, j, "value")} defaultValue=${h.value} autocomplete="off" spellcheck="false" />
      <button type="button" class="danger" onClick=${() => onChange(row.headers.filter((x) => x !== h))}>Remove header ${j + 1}</button>
    </div>`)}
    <${FieldError} id=${errorId} text=${problem} />
    <p><button type="button" onClick=${() => onChange([...row.headers, { id: next, name: "", value: "" }])}>Add header</button></p>
  </fieldset>`;
}

/** Timeouts (seconds) at ``prefix`` ("" for the group's, "deployments[0]." for one's). */
export function Timeouts({ prefix, values, errors, legend, hint }) {
  const one = (field, label, fallback) => html`<${Field} errors=${errors} label=${label} name=${`${prefix}timeout.${field}`}
    type="number" min="0" step="any" defaultValue=${values?.[field] ?? ""} placeholder=${fallback} />`;
  return html`<fieldset class="models">
    <legend>${legend}</legend>
    <p class="hint">${hint}</p>
    <div class="grid3">
      ${one("connect", "Connect timeout (s)", "5")}
      ${one("first_byte", "First byte timeout (s)", "60")}
      ${one("total", "Total timeout (s)", "600")}
    </div>
  </fieldset>`;
}

function Advanced({ row, i, errors, onHeaders }) {
  const at = (field) => `deployments[${i}].${field}`;
  const d = row.original;
  return html`<details class="advanced">
    <summary>Advanced <span class="hint">timeouts, headers, weight, order, concurrency</span></summary>
    <${Timeouts} prefix=${at("")} values=${d.timeout} errors=${errors} legend="Timeouts"
      hint="Setting any replaces the group's default for this deployment; one left empty is then the built-in value shown." />
    <${Headers} row=${row} i=${i} errors=${errors} onChange=${onHeaders} />
    <div class="grid3">
      <${Field} errors=${errors} label="Weight" name=${at("weight")} type="number" min="0" step="any" defaultValue=${d.weight ?? ""} placeholder="1" hint="Share of traffic (weighted)." />
      <${Field} errors=${errors} label="Order" name=${at("order")} type="number" step="1" defaultValue=${d.order ?? ""} placeholder="1" hint="Lower first (ordered)." />
      <${Field} errors=${errors} label="Deployment concurrency" name=${at("max_concurrency")} type="number" min="1" step="1" defaultValue=${d.max_concurrency ?? ""} hint="Requests at once; empty: no cap." />
    </div>
  </details>`;
}

/** The fields only one provider has: Azure's API version, Bedrock's region. */
function ProviderFields({ row, i, errors }) {
  const at = (field) => `deployments[${i}].${field}`;
  const d = row.original;
  if (row.provider === "azure") {
    return html`<div class="grid3"><${Field} errors=${errors} label="API version" name=${at("api_version")} defaultValue=${d.api_version ?? ""}
      placeholder="2024-10-21" hint="Empty: 2024-10-21." autocomplete="off" spellcheck="false" /></div>`;
  }
  if (row.provider === "bedrock") {
    return html`<div class="grid3"><${Field} errors=${errors} label="AWS region" name=${at("aws_region")} defaultValue=${d.aws_region ?? ""}
      required placeholder="us-east-1" hint="Requests are signed for it (and sent to it without an API base)." autocomplete="off" spellcheck="false" /></div>`;
  }
  return null;
}

const CREDENTIAL_NOTES = {
  api_key: { bedrock: "Or a Bedrock API key, instead of access keys.", azure: "An API key or an Azure AD token." },
  aws_session_token: { bedrock: "Temporary (STS) credentials come with one." },
};

export function DeploymentFields({ row, i, errors, onChange, onRemove, removable, probe }) {
  const at = (field) => `deployments[${i}].${field}`;
  const d = row.original;
  const providers = PROVIDERS.some(([p]) => p === d.provider) || !d.provider ? PROVIDERS : [...PROVIDERS, [d.provider, d.provider]];
  const onSource = (field, source) => onChange({ sources: { ...row.sources, [field]: source } });
  return html`<fieldset class="deployment" aria-describedby=${errors[`deployments[${i}]`] ? `console-deployments-${i}-error` : undefined}>
    <legend>Deployment ${i + 1}</legend>
    <${FieldError} id=${`console-deployments-${i}-error`} text=${errors[`deployments[${i}]`]} />
    <div class="grid3">
      <${Select} label="Provider" name=${at("provider")} options=${providers} value=${row.provider}
        onChange=${(e) => onChange({ provider: e.currentTarget.value })} />
      <${Field} errors=${errors} label="Model" name=${at("model")} defaultValue=${d.model ?? ""} required placeholder="gpt-4o-mini" />
      <${Field} errors=${errors} label="Name (optional)" name=${at("name")} defaultValue=${d.name ?? ""} hint="Unique; default group/provider/model." />
    </div>
    <${Field} errors=${errors} label="API base" name=${at("api_base")} defaultValue=${d.api_base ?? ""}
      placeholder=${BASES[row.provider] ?? ""} hint=${BASE_HINTS[row.provider] ?? "Empty: the provider's own."} />
    <${ProviderFields} row=${row} i=${i} errors=${errors} />
    ${credentialsOf(row.provider).map((field) => html`<${Credential} key=${field} row=${row} i=${i} field=${field} errors=${errors}
      onSource=${onSource} hint=${CREDENTIAL_NOTES[field]?.[row.provider]} />`)}
    <div class="grid3">
      <${Field} errors=${errors} label="Input price (USD / 1M tokens)" name=${at("price.input_per_mtok")} type="number" min="0" step="any" defaultValue=${d.price?.input_per_mtok ?? ""} />
      <${Field} errors=${errors} label="Output price (USD / 1M tokens)" name=${at("price.output_per_mtok")} type="number" min="0" step="any" defaultValue=${d.price?.output_per_mtok ?? ""} />
    </div>
    <${Advanced} row=${row} i=${i} errors=${errors} onHeaders=${(headers) => onChange({ headers })} />
    <div class="row-actions">
      <${TestConnection} run=${probe} />
      ${removable && html`<button type="button" class="danger" onClick=${onRemove}>Remove deployment ${i + 1}</button>`}
    </div>
  </fieldset>`;
}

let nextRow = 0;
/** A deployment's row: what the form starts from, and what changes its shape. */
export const rowOf = (original = {}) => ({
  id: nextRow++,
  original,
  provider: original.provider ?? "openai",
  sources: {},
  headers: Object.entries(original.extra_headers ?? {}).map(([name, value], id) => ({ id, name, value })),
});
