// Sign in, with the second factor when the account has one; and single sign-on, with
// every provider the server names (alone when it signs in through them only).
import { html, useEffect, useState } from "../../vendor/preact.js";
import { login, loginMfa, loginStepUp, setup } from "../api/auth.js";
import { navigate } from "../router.js";
import { ErrorText } from "./ErrorText.js";
import { Field } from "./Field.js";
import { PasskeySignIn } from "./PasskeySignIn.js";
import { SsoSignIn, ssoRefusal } from "./SsoSignIn.js";
import { useSubmit } from "./useSubmit.js";

export function LoginPage() {
  const [mfaToken, setMfaToken] = useState(null);
  const [methods, setMethods] = useState(["totp"]);
  const [stepUp, setStepUp] = useState(null);
  const [sso, setSso] = useState({ only: false, providers: [] });
  const refused = ssoRefusal(new URLSearchParams(location.search).get("sso_error"));
  useEffect(() => {
    setup().then((s) => setSso({ only: s.sso_only, providers: s.sso_providers || [] })).catch(() => {});
  }, []);
  const { busy, error, submit } = useSubmit(async (form) => {
    if (stepUp) {
      await loginStepUp(stepUp, String(form.get("code")).trim());
    } else if (mfaToken) {
      await loginMfa(mfaToken, String(form.get("code")).trim());
    } else {
      const result = await login(String(form.get("email")), String(form.get("password")));
      if (result.mfa) { setMfaToken(result.mfa); setMethods(result.methods); return; }
      if (result.stepUp) { setStepUp(result.stepUp); return; }
    }
    navigate("/", { replace: true });
  });

  const ssoBlock = html`
    ${refused && html`<p class="error" role="alert">${refused}</p>`}
    <${SsoSignIn} providers=${sso.providers} />`;
  if (stepUp) {
    // A risky sign-in (new device and country, say) with no second factor: a mailed code.
    return html`<main class="auth-page">
      <form class="card" onSubmit=${submit} aria-busy=${busy}>
        <h1>Verify it's you</h1>
        <p>This sign-in looks unusual, so we emailed you a 6-digit code.</p>
        <${Field} label="Code" name="code" autocomplete="one-time-code" inputmode="numeric"
          required autofocus hint="The code from the email; it works once, for a few minutes." />
        <${ErrorText} error=${error} />
        <button type="submit" class="primary" disabled=${busy}>Verify</button>
      </form>
    </main>`;
  }
  if (sso.only) {
    return html`<main class="auth-page">
      <div class="card">
        <h1>Sign in to Parley</h1>
        ${ssoBlock}
      </div>
    </main>`;
  }
  return html`<main class="auth-page">
    <form class="card" onSubmit=${submit} aria-busy=${busy}>
      <h1>Sign in to Parley</h1>
      ${!mfaToken && ssoBlock}
      ${!mfaToken && sso.providers.length > 0 && html`<p class="or"><span>or</span></p>`}
      ${mfaToken && !methods.includes("totp") ? null : mfaToken
        ? html`<${Field} label="Authentication code" name="code" autocomplete="one-time-code"
            inputmode="numeric" required autofocus
            hint="The 6-digit code from your authenticator app, or a recovery code." />`
        : html`
          <${Field} label="Email" name="email" type="email" autocomplete="username" required autofocus />
          <${Field} label="Password" name="password" type="password" autocomplete="current-password" required />`}
      <${ErrorText} error=${error} />
      ${(!mfaToken || methods.includes("totp")) && html`<button type="submit" class="primary" disabled=${busy}>${mfaToken ? "Verify" : "Sign in"}</button>`}
      ${(!mfaToken || methods.includes("passkey")) &&
        html`<${PasskeySignIn} mfaToken=${mfaToken} label=${mfaToken ? "Use a passkey" : "Sign in with a passkey"} />`}
      <p class="alt"><a href="/forgot-password">Forgot password?</a></p>
      <p class="alt">No account yet? <a href="/register">Create one</a></p>
    </form>
  </main>`;
}
