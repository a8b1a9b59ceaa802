// Every call to Parley's API goes through here: the bearer token, JSON, errors as ApiError,
// and one transparent refresh when the access token has expired.
import { accessToken } from "../state.js";

/** An error answer from the API, in its own envelope ({"error": {message, type, param, code}}). */
export class ApiError extends Error {
  constructor(status, error = {}, headers = new Headers()) {
    super(error.message || `request failed (${status})`);
    this.status = status;
    this.code = error.code || null;
    this.param = error.param || null;
    const retry = Number(headers.get("retry-after"));
    this.retryAfter = Number.isFinite(retry) && retry > 0 ? retry : null;
  }
}

let refresher = null;
/** auth.js registers how to refresh the session (kept apart to avoid an import cycle). */
export function onExpired(refresh) { refresher = refresh; }

async function send(method, path, { body, signal, headers = {} }) {
  const init = { method, signal, headers: { ...headers }, credentials: "same-origin" };
  if (accessToken.value) init.headers.authorization = `Bearer ${accessToken.value}`;
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  return fetch(path, init);
}

async function failure(response) {
  let error = {};
  try { error = (await response.json()).error || {}; } catch { /* not JSON: keep the status */ }
  return new ApiError(response.status, error, response.headers);
}

/** The raw Response of a successful call (for streams); throws ApiError otherwise. */
export async function call(method, path, options = {}) {
  let response = await send(method, path, options);
  if (response.status === 401 && accessToken.value && refresher && !options.noRefresh) {
    const started = accessToken.value;
    if (await refresher(started)) response = await send(method, path, options);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

/** A call whose answer is JSON (or nothing, for 204). */
export async function json(method, path, options = {}) {
  const response = await call(method, path, options);
  if (response.status === 204) return null;
  return response.json();
}
