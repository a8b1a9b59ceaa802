// "Sign in with a passkey": the passwordless sign-in, or the passkey as the second factor
// after a password (`mfaToken`). Shown only where the browser has WebAuthn.
import { html, useState } from "../../vendor/preact.js";
import { loginPasskey } from "../api/auth.js";
import { supported } from "../api/passkeys.js";
import { navigate } from "../router.js";
import { ErrorText } from "./ErrorText.js";

/** What to tell the user when the browser's own dialog was dismissed or timed out. */
function explained(caught) {
  if (caught?.name === "NotAllowedError") return new Error("The passkey request was cancelled or timed out. Try again.");
  return caught;
}

export function PasskeySignIn({ mfaToken = null, label = "Sign in with a passkey" }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  if (!supported()) return null;
  async function go() {
    setBusy(true);
    setError(null);
    try {
      await loginPasskey(mfaToken);
      navigate("/", { replace: true });
    } catch (caught) {
      setError(explained(caught));
    } finally {
      setBusy(false);
    }
  }
  return html`<div class="passkey-signin">
    <button type="button" onClick=${go} disabled=${busy} aria-busy=${busy}>${label}</button>
    <${ErrorText} error=${error} />
  </div>`;
}
