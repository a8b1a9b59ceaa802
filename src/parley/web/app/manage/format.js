// How the console writes amounts, times and limits: short, and the same on every page.

export function usd(value) {
  if (value === null || value === undefined) return "—";
  if (value === 0) return "$0";
  if (value < 0.01) return `$${value.toPrecision(2)}`;
  return `$${value.toFixed(2)}`;
}

export function when(ms) {
  if (!ms) return "—";
  return new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** An instant in UTC, labelled so: for pages whose filters are UTC days (the audit log),
 * where a local time would put an entry on another day than its filter does. */
export function whenUtc(ms) {
  if (!ms) return "—";
  return `${new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" })} UTC`;
}

export function count(value) {
  return value === null || value === undefined ? "—" : Number(value).toLocaleString();
}

const BREAKER = { closed: "Closed", open: "Open", half_open: "Half-open" };
/** A circuit breaker's state in words. */
export const breaker = (state) => BREAKER[state] ?? state;

/** "60 rpm · 10,000 tpm · 4 parallel", or "none" when nothing is set. */
export function limits(row) {
  const parts = [];
  if (row.rpm) parts.push(`${count(row.rpm)} rpm`);
  if (row.tpm) parts.push(`${count(row.tpm)} tpm`);
  if (row.max_parallel) parts.push(`${count(row.max_parallel)} parallel`);
  return parts.length ? parts.join(" · ") : "none";
}

/** A form's numeric field: a number, or undefined when left empty. */
export function numberOf(form, name) {
  const raw = String(form.get(name) ?? "").trim();
  return raw === "" ? undefined : Number(raw);
}

/** A form's text field, trimmed; undefined when empty. */
export function textOf(form, name) {
  const raw = String(form.get(name) ?? "").trim();
  return raw === "" ? undefined : raw;
}

/** Only the fields that were given (the API reads a missing field as "leave as it is"). */
export function given(fields) {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined));
}

/** A duration in milliseconds: "420 ms", "2.4 s"; "—" when there is none. */
export function ms(value) {
  if (value === null || value === undefined) return "—";
  return value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(value < 10_000 ? 2 : 1)} s`;
}

/** A share (0..1) as a percentage; "—" when nothing was counted. */
export function percent(share) {
  if (share === null || share === undefined) return "—";
  return `${(share * 100).toFixed(share > 0 && share < 0.1 ? 1 : 0)} %`;
}

/** An hour bucket's start, as the charts label it ("14:00"; UTC, as the buckets are). */
export function hourOf(ms_) {
  return new Date(ms_).toISOString().slice(11, 16);
}

/** A day bucket's start ("Nov 3", UTC). */
export function dayOf(ms_) {
  return new Date(ms_).toLocaleDateString(undefined, { month: "short", day: "numeric", timeZone: "UTC" });
}
