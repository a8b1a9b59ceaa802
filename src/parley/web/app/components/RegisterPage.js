// Create an account (when registration is open), then sign in.
import { html, useEffect, useState } from "../../vendor/preact.js";
import { register, setup } from "../api/auth.js";
import { navigate } from "../router.js";
import { ErrorText } from "./ErrorText.js";
import { Field } from "./Field.js";
import { useSubmit } from "./useSubmit.js";

export function RegisterPage() {
  const [install, setInstall] = useState(null);
  useEffect(() => { setup().then(setInstall, () => setInstall(null)); }, []);
  const closed = install && !install.registration_open;
  const { busy, error, submit } = useSubmit(async (form) => {
    await register(String(form.get("name")), String(form.get("email")), String(form.get("password")));
    navigate("/", { replace: true });
  });

  return html`<main class="auth-page">
    <form class="card" onSubmit=${submit} aria-busy=${busy}>
      <h1>Create your Parley account</h1>
      ${install?.first_account_is_admin && html`<p class="first-run" role="note">Nobody has an account
        here yet: the one you create now will administer this Parley.</p>`}
      ${closed && html`<p class="error" role="alert">Registration is closed here: ask an
        administrator for an account.</p>`}
      <${Field} label="Name" name="name" autocomplete="name" required autofocus />
      <${Field} label="Email" name="email" type="email" autocomplete="email" required />
      <${Field} label="Password" name="password" type="password" autocomplete="new-password"
        minlength="12" required
        hint="At least 12 characters; not a common password, your name or your email." />
      <${ErrorText} error=${error} />
      <button type="submit" class="primary" disabled=${busy || closed}>Create account</button>
      <p class="alt">Already have an account? <a href="/login">Sign in</a></p>
    </form>
  </main>`;
}
