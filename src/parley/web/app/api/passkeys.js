// Passkeys: the WebAuthn ceremonies between the server's JSON options and the browser's
// navigator.credentials, and the account's list of passkeys.
//
// The server speaks WebAuthn's JSON forms (base64url for every binary field); the browser
// API wants ArrayBuffers. The conversion is done here by hand rather than with
// PublicKeyCredential.parseCreationOptionsFromJSON/toJSON, which older browsers lack.
import { json } from "./http.js";

const COOKIE_MODE = { "x-parley-refresh-cookie": "1" };

function fromB64url(text) {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4);
  return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0)).buffer;
}

function toB64url(buffer) {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const descriptors = (list = []) => list.map((d) => ({ ...d, id: fromB64url(d.id) }));

/** Whether this browser can use passkeys at all (a secure context with WebAuthn). */
export const supported = () => typeof window.PublicKeyCredential === "function";

async function create(options) {
  const publicKey = {
    ...options,
    challenge: fromB64url(options.challenge),
    user: { ...options.user, id: fromB64url(options.user.id) },
    excludeCredentials: descriptors(options.excludeCredentials),
  };
  const made = await navigator.credentials.create({ publicKey });
  return {
    id: made.id,
    rawId: toB64url(made.rawId),
    type: made.type,
    response: {
      clientDataJSON: toB64url(made.response.clientDataJSON),
      attestationObject: toB64url(made.response.attestationObject),
      transports: made.response.getTransports?.() ?? [],
    },
    clientExtensionResults: made.getClientExtensionResults(),
    authenticatorAttachment: made.authenticatorAttachment ?? null,
  };
}

async function get(options) {
  const publicKey = {
    ...options,
    challenge: fromB64url(options.challenge),
    allowCredentials: descriptors(options.allowCredentials),
  };
  const got = await navigator.credentials.get({ publicKey });
  const response = got.response;
  return {
    id: got.id,
    rawId: toB64url(got.rawId),
    type: got.type,
    response: {
      clientDataJSON: toB64url(response.clientDataJSON),
      authenticatorData: toB64url(response.authenticatorData),
      signature: toB64url(response.signature),
      userHandle: response.userHandle ? toB64url(response.userHandle) : null,
    },
    clientExtensionResults: got.getClientExtensionResults(),
    authenticatorAttachment: got.authenticatorAttachment ?? null,
  };
}

/** The token answer of a passkey sign-in: alone, or after a password (`mfaToken`). */
export async function signIn(mfaToken = null) {
  const options = mfaToken
    ? await json("POST", "/auth/passkeys/mfa/options", { body: { mfa_token: mfaToken }, noRefresh: true })
    : await json("POST", "/auth/passkeys/login/options", { noRefresh: true });
  const credential = await get(options);
  const body = mfaToken ? { credential, mfa_token: mfaToken } : { credential };
  return json("POST", "/auth/passkeys/login", { headers: COOKIE_MODE, body, noRefresh: true });
}

/** Make a passkey on this device and register it under `name`. */
export async function add(name) {
  const options = await json("POST", "/auth/passkeys/register/options");
  const credential = await create(options);
  return json("POST", "/auth/passkeys/register", { body: { credential, name } });
}

/** A fresh assertion for `options` (re-authentication before a sensitive action). */
export const assert = get;

export const list = () => json("GET", "/auth/passkeys");
export const rename = (id, name) => json("PATCH", `/auth/passkeys/${encodeURIComponent(id)}`, { body: { name } });
export const remove = (id) => json("DELETE", `/auth/passkeys/${encodeURIComponent(id)}`);
