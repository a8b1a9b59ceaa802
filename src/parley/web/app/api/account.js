// The signed-in user's account: password, second factor, sessions.
import { call, json } from "./http.js";

export const changePassword = (current, next) =>
  json("POST", "/auth/password", { body: { current_password: current, new_password: next } });
export const enrollMfa = () => json("POST", "/auth/mfa/enroll");
export const verifyMfa = (code) => json("POST", "/auth/mfa/verify", { body: { code } });
export const disableMfa = (code) => json("POST", "/auth/mfa/disable", { body: { code } });
export const sessions = () => json("GET", "/auth/sessions");
export const revokeSession = (id) => json("DELETE", `/auth/sessions/${encodeURIComponent(id)}`);
export const me = () => json("GET", "/api/me");

/** Everything Parley holds about the account, as one JSON file (a Blob). */
export async function exportData() {
  const response = await call("GET", "/api/account/export");
  return response.blob();
}

/** The challenge a passkey signs to re-authenticate before deleting the account. */
export const reauthOptions = () => json("POST", "/api/account/reauth/options");

/** Delete the account: `confirm` is its email typed out; `password` or `credential`. */
export const deleteAccount = (body) => json("POST", "/api/account/delete", { body });
