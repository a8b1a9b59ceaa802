// Password reset and email verification: the links Parley mails, and asking for them.
import { user } from "../state.js";
import { json } from "./http.js";

/** Answers the same whether or not the address has an account. */
export const requestReset = (email) =>
  json("POST", "/auth/password-reset", { body: { email }, noRefresh: true });

export const confirmReset = (token, newPassword) =>
  json("POST", "/auth/password-reset/confirm", { body: { token, new_password: newPassword }, noRefresh: true });

export async function verifyEmail(token) {
  await json("POST", "/auth/verify-email", { body: { token }, noRefresh: true });
  if (user.value) user.value = { ...user.value, email_verified: true };
}

export const resendVerification = () => json("POST", "/auth/verify-email/resend");

/** The token from a mailed link (in the fragment, so no server ever logged it), then the
 * fragment is dropped from the address bar and history. */
export function takeLinkToken() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token) history.replaceState(null, "", location.pathname);
  return token;
}
