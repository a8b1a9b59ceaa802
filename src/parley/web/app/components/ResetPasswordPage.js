// Choose a new password from the emailed link (/reset-password#token=...).
import { html, useState } from "../../vendor/preact.js";
import { confirmReset, takeLinkToken } from "../api/recovery.js";
import { ErrorText } from "./ErrorText.js";
import { Field } from "./Field.js";
import { useSubmit } from "./useSubmit.js";

export function ResetPasswordPage() {
  const [token] = useState(takeLinkToken);
  const [done, setDone] = useState(false);
  const { busy, error, submit } = useSubmit(async (form) => {
    await confirmReset(token, String(form.get("password")));
    setDone(true);
  });

  let body;
  if (done) {
    body = html`<p role="status">Your password is set, and every session of your account has
      been signed out.</p><p class="alt"><a href="/login">Sign in</a></p>`;
  } else if (!token) {
    body = html`<p class="error" role="alert">This page needs the link from your email.</p>
      <p class="alt"><a href="/forgot-password">Ask for a new link</a></p>`;
  } else {
    body = html`<${Field} label="New password" name="password" type="password" autocomplete="new-password"
        minlength="12" required autofocus
        hint="At least 12 characters; not a common password, your name or your email." />
      <${ErrorText} error=${error} />
      <button type="submit" class="primary" disabled=${busy}>Set password</button>
      ${error?.code === "invalid_token" && html`<p class="alt"><a href="/forgot-password">Ask for a new link</a></p>`}`;
  }
  return html`<main class="auth-page">
    <form class="card" onSubmit=${submit} aria-busy=${busy}>
      <h1>Choose a new password</h1>
      ${body}
    </form>
  </main>`;
}
