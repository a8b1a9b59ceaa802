// Confirm an email address from the emailed link (/verify-email#token=...).
import { html, useEffect, useState } from "../../vendor/preact.js";
import { takeLinkToken, verifyEmail } from "../api/recovery.js";
import { ErrorText } from "./ErrorText.js";

export function VerifyEmailPage() {
  const [state, setState] = useState({ status: "working", error: null });
  useEffect(() => {
    const token = takeLinkToken();
    if (!token) { setState({ status: "failed", error: new Error("This page needs the link from your email.") }); return; }
    verifyEmail(token).then(
      () => setState({ status: "done", error: null }),
      (error) => setState({ status: "failed", error }),
    );
  }, []);

  return html`<main class="auth-page">
    <div class="card">
      <h1>Confirm your email address</h1>
      ${state.status === "working" && html`<p role="status">Confirming…</p>`}
      ${state.status === "done" && html`<p role="status">Your email address is confirmed.</p>`}
      <${ErrorText} error=${state.error} />
      <p class="alt"><a href="/">Continue to Parley</a></p>
    </div>
  </main>`;
}
