// The console's calls to /admin (one function per operation; components never fetch).
import { call, json } from "../api/http.js";

const part = encodeURIComponent;

function query(params) {
  const set = Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return set.length ? `?${new URLSearchParams(set)}` : "";
}

// keys
export const listKeys = (teamId) => json("GET", `/admin/keys${query({ team_id: teamId })}`);
export const createKey = (body) => json("POST", "/admin/keys", { body });
export const revokeKey = (id) => json("DELETE", `/admin/keys/${part(id)}`);
export const rotateKey = (id, graceSeconds) =>
  json("POST", `/admin/keys/${part(id)}/rotate`, { body: { grace_seconds: graceSeconds } });
export const resetKeyBudget = (id) => json("POST", `/admin/keys/${part(id)}/reset-budget`);

// teams
export const listTeams = () => json("GET", "/admin/teams");
export const getTeam = (id) => json("GET", `/admin/teams/${part(id)}`);
export const createTeam = (body) => json("POST", "/admin/teams", { body });
export const updateTeam = (id, body) => json("PATCH", `/admin/teams/${part(id)}`, { body });
export const setMember = (teamId, userId, role) =>
  json("PUT", `/admin/teams/${part(teamId)}/members/${part(userId)}`, { body: { role } });
export const removeMember = (teamId, userId) =>
  json("DELETE", `/admin/teams/${part(teamId)}/members/${part(userId)}`);
export const invite = (teamId, body) =>
  json("POST", `/admin/teams/${part(teamId)}/invitations`, { body });

// users (global admins)
export const listUsers = (offset = 0, limit = 100) => json("GET", `/admin/users${query({ offset, limit })}`);
export const updateUser = (id, body) => json("PATCH", `/admin/users/${part(id)}`, { body });
export const passwordResetLink = (id) => json("POST", `/admin/users/${part(id)}/password-reset`);
export const resetMfa = (id) => json("POST", `/admin/users/${part(id)}/mfa-reset`);

// cache and deployments
export const invalidateCache = (params) => json("DELETE", `/admin/cache${query(params)}`);
export const deployments = () => json("GET", "/admin/deployments");

// model groups (global admins). A group's name may hold "/": each segment is encoded.
const group = (name) => name.split("/").map(part).join("/");
export const listModels = () => json("GET", "/admin/models");
/** Deleted stored groups, each with ``restorable_revision``: ``rollbackModel`` brings it back. */
export const deletedModels = () => json("GET", "/admin/models?deleted=true");
export const createModel = (body) => json("POST", "/admin/models", { body });
export const replaceModel = (name, body) => json("PUT", `/admin/models/${group(name)}`, { body });
export const deleteModel = (name) => json("DELETE", `/admin/models/${group(name)}`);
export const modelRevisions = (name) => json("GET", `/admin/models/${group(name)}/revisions`);
export const rollbackModel = (name, revision) =>
  json("POST", `/admin/models/${group(name)}/rollback`, { body: { revision } });
export const setModelEnabled = (name, enabled) =>
  json("POST", `/admin/models/${group(name)}/${enabled ? "enable" : "disable"}`);
export const setDeploymentEnabled = (name, index, enabled) =>
  json("POST", `/admin/models/${group(name)}/deployments/${index}/${enabled ? "enable" : "disable"}`);
export const testDeployment = (name, index) =>
  json("POST", `/admin/models/${group(name)}/deployments/${index}/test`);
/** The connection test of a group not saved yet (the dialog's, before "Save"). */
export const testUnsaved = (body, index) => json("POST", `/admin/models/test${query({ deployment: index })}`, { body });

// usage, overview, cache hit rates and the audit log (read from the usage rollups)
export const overview = (params) => json("GET", `/admin/overview${query(params)}`);
export const usage = (params) => json("GET", `/admin/usage${query(params)}`);
export const usageCsv = (params) => call("GET", `/admin/usage.csv${query(params)}`).then((r) => r.blob());
export const cacheHitRates = (params) => json("GET", `/admin/cache/hit-rates${query(params)}`);
export const auditLog = (params) => json("GET", `/admin/audit${query(params)}`);
