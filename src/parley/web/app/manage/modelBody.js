// The model dialog's form turned into the group the API takes. The body is the stored
// document with the form's fields laid over it, so fields the form does not show (tags,
// proxy, health checks...) are kept as they are; a field the form shows and the person
// cleared is removed (the schema's default). Fields of another provider than the one
// selected are dropped: the schema refuses them (aws_region on an OpenAI deployment).
import { numberOf, textOf } from "./format.js";

export const ENV = "os.environ/";
export const HINT = "…"; // how the API shows a stored secret: "…abcd"

/** Fields that apply to one provider only, and the credentials each provider may take. */
export const PROVIDER_FIELDS = {
  azure: ["api_version", "azure_ad_token"],
  bedrock: ["aws_region", "aws_access_key_id", "aws_secret_access_key", "aws_session_token"],
};
const OWN_CREDENTIALS = {
  azure: ["azure_ad_token"],
  bedrock: ["aws_access_key_id", "aws_secret_access_key", "aws_session_token"],
};

/** The secret fields the form shows for ``provider``, in the order it shows them. */
export const credentialsOf = (provider) => [...(OWN_CREDENTIALS[provider] ?? []), "api_key"];

export const TIMEOUTS = ["connect", "first_byte", "total"];

/** Set ``key`` to ``value``, or remove it when the value is empty (the schema's default). */
export function put(target, key, value) {
  if (value === undefined || value === false || (Array.isArray(value) && value.length === 0)) delete target[key];
  else target[key] = value;
}

/** ``target[key]`` with ``fields`` laid over it; removed when nothing is left. */
export function putAll(target, key, fields) {
  const merged = { ...(target[key] ?? {}) };
  for (const [name, value] of Object.entries(fields)) put(merged, name, value);
  put(target, key, Object.keys(merged).length ? merged : undefined);
}

export function sourceOf(secret) {
  if (!secret) return "none";
  return secret.startsWith(ENV) ? "env" : "secret";
}

/** Where a row's secret ``field`` comes from: chosen in the form, else what is stored,
 * else a default (a new Bedrock deployment signs with access keys, not an API key). */
export function sourceFor(row, field) {
  if (row.sources[field]) return row.sources[field];
  const stored = row.original[field];
  if (stored !== undefined) return sourceOf(stored);
  if (field === "api_key") return row.provider === "bedrock" ? "none" : "env";
  if (row.original.provider) return "none"; // a stored deployment without it
  return field === "aws_access_key_id" || field === "aws_secret_access_key" ? "env" : "none";
}

/** A secret field from its source and what was typed: a reference, a new secret, the
 * stored one (its hint sent back, when nothing was typed), or nothing. */
function putSecret(d, field, source, typed) {
  if (source === "none") delete d[field];
  else if (source === "env") put(d, field, typed && (typed.startsWith(ENV) ? typed : ENV + typed));
  else if (typed) d[field] = typed;
  else if (!String(d[field] ?? "").startsWith(HINT)) delete d[field]; // keep a stored secret, nothing else
}

const timeoutsOf = (form, prefix) => Object.fromEntries(TIMEOUTS.map((t) => [t, numberOf(form, `${prefix}timeout.${t}`)]));

/** A header row's inputs: ``deployments[i].extra_headers[j].name`` and ``.value``. */
export const headerField = (i, j, part) => `deployments[${i}].extra_headers[${j}].${part}`;

function headersOf(form, i, row) {
  const headers = {};
  row.headers.forEach((_, j) => {
    const name = textOf(form, headerField(i, j, "name"));
    if (name !== undefined) headers[name] = String(form.get(headerField(i, j, "value")) ?? "").trim();
  });
  return Object.keys(headers).length ? headers : undefined;
}

/** Headers with a value and no name: refused here, since they cannot be stored. */
export function headerProblems(form, rows) {
  const found = {};
  rows.forEach((row, i) => {
    const nameless = row.headers.map((_, j) => j).filter((j) =>
      textOf(form, headerField(i, j, "name")) === undefined && textOf(form, headerField(i, j, "value")) !== undefined);
    if (nameless.length) found[`deployments[${i}].extra_headers`] = `header ${nameless.map((j) => j + 1).join(", ")} has a value but no name`;
  });
  return found;
}

function deploymentOf(form, row, i) {
  const at = (field) => `deployments[${i}].${field}`;
  const d = structuredClone(row.original);
  for (const field of ["provider", "model", "api_base", "name"]) put(d, field, textOf(form, at(field)));
  const provider = d.provider;
  for (const [other, fields] of Object.entries(PROVIDER_FIELDS)) {
    if (other !== provider) for (const field of fields) delete d[field];
  }
  for (const field of ["api_version", "aws_region"]) {
    if ((PROVIDER_FIELDS[provider] ?? []).includes(field)) put(d, field, textOf(form, at(field)));
  }
  for (const field of credentialsOf(provider)) putSecret(d, field, sourceFor(row, field), textOf(form, at(field)));
  putAll(d, "price", { input_per_mtok: numberOf(form, at("price.input_per_mtok")), output_per_mtok: numberOf(form, at("price.output_per_mtok")) });
  // the Advanced section shows every timeout and header, so what it does not hold is gone
  delete d.timeout;
  putAll(d, "timeout", timeoutsOf(form, at("")));
  put(d, "extra_headers", headersOf(form, i, row));
  for (const field of ["weight", "order", "max_concurrency"]) put(d, field, numberOf(form, at(field)));
  return d;
}

/** The group's budget: the stored one (its time zone, alert thresholds) with the form's
 * amounts and period over it; none at all once both amounts are cleared. */
function budgetOf(form, stored) {
  const budget = { ...(stored ?? {}) };
  put(budget, "usd", numberOf(form, "budget.usd"));
  put(budget, "soft_usd", numberOf(form, "budget.soft_usd"));
  const period = textOf(form, "budget.period");
  if (period !== "monthly" || budget.period !== undefined) put(budget, "period", period); // monthly: the default
  return budget.usd !== undefined || budget.soft_usd !== undefined ? budget : undefined;
}

/** The group as the API takes it, from the form and the stored document under it. */
export function bodyOf(form, stored, rows) {
  const body = structuredClone(stored ?? {});
  put(body, "name", textOf(form, "name") ?? body.name);
  put(body, "strategy", textOf(form, "strategy"));
  put(body, "fallbacks", form.getAll("fallbacks").map(String));
  put(body, "retries", numberOf(form, "retries"));
  put(body, "max_concurrency", numberOf(form, "max_concurrency"));
  putAll(body, "limits", { rpm: numberOf(form, "limits.rpm"), tpm: numberOf(form, "limits.tpm"), max_parallel: numberOf(form, "limits.max_parallel") });
  putAll(body, "cache", { enabled: form.has("cache.enabled"), ttl: numberOf(form, "cache.ttl"), semantic: form.has("cache.semantic") });
  put(body, "budget", budgetOf(form, body.budget));
  put(body, "max_cost_usd", numberOf(form, "max_cost_usd"));
  delete body.timeout;
  putAll(body, "timeout", timeoutsOf(form, ""));
  body.deployments = rows.map((row, i) => deploymentOf(form, row, i));
  return body;
}

/** The paths of the form's fields, for ``problemsByField``: an API problem is shown beside
 * the nearest one up its path. */
export function knownPaths(rows) {
  const group = ["name", "strategy", "fallbacks", "retries", "max_concurrency", "limits.rpm", "limits.tpm",
    "limits.max_parallel", "cache.ttl", "deployments", "budget", "budget.usd", "budget.soft_usd", "budget.period",
    "max_cost_usd", ...TIMEOUTS.map((t) => `timeout.${t}`)];
  const each = ["model", "name", "api_base", "api_key", "price.input_per_mtok", "price.output_per_mtok",
    ...PROVIDER_FIELDS.azure, ...PROVIDER_FIELDS.bedrock, ...TIMEOUTS.map((t) => `timeout.${t}`),
    "extra_headers", "weight", "order", "max_concurrency"];
  return new Set([...group, ...rows.flatMap((_, i) => [`deployments[${i}]`, ...each.map((f) => `deployments[${i}].${f}`)])]);
}
