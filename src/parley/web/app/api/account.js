// The signed-in user's account: password, second factor, sessions.
import { json } from "./http.js";

export const changePassword = (current, next) =>
  json("POST", "/auth/password", { body: { current_password: current, new_password: next } });
export const enrollMfa = () => json("POST", "/auth/mfa/enroll");
export const verifyMfa = (code) => json("POST", "/auth/mfa/verify", { body: { code } });
export const disableMfa = (code) => json("POST", "/auth/mfa/disable", { body: { code } });
export const sessions = () => json("GET", "/auth/sessions");
export const revokeSession = (id) => json("DELETE", `/auth/sessions/${encodeURIComponent(id)}`);
export const me = () => json("GET", "/api/me");
