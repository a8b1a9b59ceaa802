// Sign-in, sign-out and the session's tokens, shared by every tab of the app.
//
// The access token lives in memory; the refresh token is an HttpOnly cookie the server sets
// in cookie mode. Refresh tokens rotate and a reused one revokes the session, so tabs must
// never refresh at once: one tab refreshes under a Web Lock and hands the new access token
// to the others over a BroadcastChannel.
import { accessToken, user } from "../state.js";
import { call, json, onExpired } from "./http.js";

const COOKIE_MODE = { "x-parley-refresh-cookie": "1" };
const channel = "BroadcastChannel" in self ? new BroadcastChannel("parley-auth") : null;

function adopt(tokens) {
  accessToken.value = tokens.access_token;
}

channel?.addEventListener("message", ({ data }) => {
  if (data.type === "token") accessToken.value = data.token;
  if (data.type === "signed-out") { accessToken.value = null; user.value = null; }
});

function announce(message) { channel?.postMessage(message); }

async function withLock(work) {
  if (navigator.locks) return navigator.locks.request("parley-refresh", work);
  return work();
}

/**
 * Get a fresh access token from the cookie. `stale` is the token the caller saw fail: if
 * another tab replaced it while this one waited for the lock, that token is used instead.
 */
export async function refresh(stale = null) {
  return withLock(async () => {
    if (stale !== null && accessToken.value && accessToken.value !== stale) return true;
    try {
      const tokens = await json("POST", "/auth/refresh", { headers: COOKIE_MODE, body: {}, noRefresh: true });
      adopt(tokens);
      announce({ type: "token", token: tokens.access_token });
      return true;
    } catch {
      accessToken.value = null;
      user.value = null;
      return false;
    }
  });
}
onExpired(refresh);

async function loadMe() {
  user.value = await json("GET", "/api/me");
}

/** On page load: restore the session from the cookie, or show the signed-out state. */
export async function restore() {
  if (await refresh()) {
    try { await loadMe(); return; } catch { /* fall through: signed out */ }
  }
  user.value = null;
}

/** Returns {mfa: token} when a second factor is needed, {stepUp: token} when a risky
 * sign-in must be confirmed with a code sent by email, else signs in. */
export async function login(email, password) {
  const result = await json("POST", "/auth/login", { headers: COOKIE_MODE, body: { email, password }, noRefresh: true });
  if (result.mfa_required) return { mfa: result.mfa_token, methods: result.mfa_methods || ["totp"] };
  if (result.step_up_required) return { stepUp: result.step_up_token };
  adopt(result);
  await loadMe();
  announce({ type: "token", token: result.access_token });
  return {};
}

/** Sign in with a passkey, alone or as the second factor after a password (`mfaToken`). */
export async function loginPasskey(mfaToken = null) {
  const { signIn } = await import("./passkeys.js"); // WebAuthn code: only when it is used
  const result = await signIn(mfaToken);
  adopt(result);
  await loadMe();
  announce({ type: "token", token: result.access_token });
}

export async function loginMfa(mfaToken, code) {
  const body = /^\d{6}$/.test(code) ? { mfa_token: mfaToken, code } : { mfa_token: mfaToken, recovery_code: code };
  const result = await json("POST", "/auth/login/mfa", { headers: COOKIE_MODE, body, noRefresh: true });
  adopt(result);
  await loadMe();
  announce({ type: "token", token: result.access_token });
}

/** Finish a stepped-up sign-in with the code the server mailed. */
export async function loginStepUp(stepUpToken, code) {
  const body = { step_up_token: stepUpToken, code };
  const result = await json("POST", "/auth/login/step-up", { headers: COOKIE_MODE, body, noRefresh: true });
  adopt(result);
  await loadMe();
  announce({ type: "token", token: result.access_token });
}

/** Whether registration is open, and whether the next account will be the first (the admin). */
export const setup = () => json("GET", "/auth/setup", { noRefresh: true });

export async function register(name, email, password) {
  await json("POST", "/auth/register", { body: { name, email, password }, noRefresh: true });
  return login(email, password);
}

/** Forget the session here and in every tab (the server has ended it already). */
export function signedOut() {
  accessToken.value = null;
  user.value = null;
  announce({ type: "signed-out" });
}

export async function logout({ everywhere = false } = {}) {
  let endSession = null;
  try {
    const response = await call("POST", everywhere ? "/auth/logout-all" : "/auth/logout", { headers: COOKIE_MODE });
    endSession = (await response.json()).end_session_url || null;
  } finally {
    signedOut();
  }
  // Signed in through single sign-on: end the provider's session too (it sends us back).
  if (endSession) location.assign(endSession);
}
