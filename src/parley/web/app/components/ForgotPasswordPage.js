// Ask for a password-reset link by email.
import { html, useState } from "../../vendor/preact.js";
import { requestReset } from "../api/recovery.js";
import { ErrorText } from "./ErrorText.js";
import { Field } from "./Field.js";
import { useSubmit } from "./useSubmit.js";

export function ForgotPasswordPage() {
  const [sent, setSent] = useState(false);
  const { busy, error, submit } = useSubmit(async (form) => {
    await requestReset(String(form.get("email")));
    setSent(true);
  });

  return html`<main class="auth-page">
    <form class="card" onSubmit=${submit} aria-busy=${busy}>
      <h1>Reset your password</h1>
      ${sent
        ? html`<p role="status">If an account has this address, a reset link is on its way.
            It works once and for a short while.</p>`
        : html`<${Field} label="Email" name="email" type="email" autocomplete="username" required autofocus
            hint="We will email you a link to choose a new password." />
          <${ErrorText} error=${error} />
          <button type="submit" class="primary" disabled=${busy}>Send reset link</button>`}
      <p class="alt"><a href="/login">Back to sign in</a></p>
    </form>
  </main>`;
}
