// "Sign in with <provider>": one link per OpenID provider the server names. A link, not a
// fetch: single sign-on is a navigation to the provider and back (api/sso.py).
import { html } from "../../vendor/preact.js";

/** What a refused single sign-on (`/login?sso_error=<code>`) means for the person. */
const REFUSALS = {
  sso_email_unverified: "Your identity provider has not verified your email address, so it cannot be used to sign in here.",
  sso_domain_refused: "Accounts with this email domain cannot sign in here.",
  sso_no_account: "There is no Parley account for this identity yet. Ask an administrator.",
  sso_state: "That sign-in expired or was started in another browser. Try again.",
  sso_denied: "The identity provider did not complete the sign-in.",
  sso_unavailable: "The identity provider cannot be reached right now. Try again shortly.",
  account_disabled: "This account is disabled.",
};

export function ssoRefusal(code) {
  if (!code) return null;
  return REFUSALS[code] || "Single sign-on did not complete. Try again.";
}

export function SsoSignIn({ providers }) {
  if (!providers?.length) return null;
  return html`<div class="sso-signin">
    ${providers.map((p) => html`<a class="button" href=${p.login_url}>Sign in with ${p.display_name}</a>`)}
  </div>`;
}
