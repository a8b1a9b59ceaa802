// Shown while the signed-in account's address is not confirmed yet.
import { html, useState } from "../../vendor/preact.js";
import { user } from "../state.js";

export function VerifyNotice() {
  const [sent, setSent] = useState(false);
  const me = user.value;
  if (!me || me.email_verified !== false || (me.email_verification ?? "off") === "off") return null;
  async function resend() {
    try {
      const { resendVerification } = await import("../api/recovery.js"); // rarely needed
      await resendVerification();
      setSent(true);
    } catch { setSent(false); }
  }
  return html`<p class="notice verify-notice" role="status">
    Verify your email address: follow the link we sent to ${user.value.email}.
    ${sent ? " A new link is on its way." : html` <button type="button" onClick=${resend}>Send the link again</button>`}
  </p>`;
}
