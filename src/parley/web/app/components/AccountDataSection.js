// Account settings: download everything Parley holds about you, or delete the account
// (a native <dialog>: the email typed out, then the password or a passkey again).
import { html, useState } from "../../vendor/preact.js";
import * as account from "../api/account.js";
import { signedOut } from "../api/auth.js";
import { assert as passkeyAssert, supported } from "../api/passkeys.js";
import { navigate } from "../router.js";
import { user } from "../state.js";
import { ErrorText } from "./ErrorText.js";
import { Field } from "./Field.js";
import { Modal } from "./Modal.js";

function DeleteDialog({ open, onClose }) {
  const email = user.value?.email || "";
  const [typed, setTyped] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const confirmed = typed.trim().toLowerCase() === email;

  async function erase(extra) {
    setBusy(true);
    setError(null);
    try {
      await account.deleteAccount({ confirm: typed.trim(), ...extra });
      signedOut();
      navigate("/login", { replace: true });
    } catch (caught) {
      setError(caught?.name === "NotAllowedError" ? new Error("The passkey request was cancelled or timed out.") : caught);
    } finally {
      setBusy(false);
    }
  }
  async function withPassword(event) {
    event.preventDefault();
    await erase({ password: String(new FormData(event.currentTarget).get("password")) });
  }
  async function withPasskey() {
    try {
      const credential = await passkeyAssert(await account.reauthOptions());
      await erase({ credential });
    } catch (caught) {
      setError(caught?.name === "NotAllowedError" ? new Error("The passkey request was cancelled or timed out.") : caught);
    }
  }
  return html`<${Modal} label="Delete account" open=${open} onClose=${onClose}>
    <form onSubmit=${withPassword} aria-busy=${busy}>
      <h2>Delete account</h2>
      <p>This deletes your account and everything in it: conversations, shared links, presets, passkeys, API keys and sessions. It cannot be undone. Download your data first if you want to keep it.</p>
      <${Field} label="Type your email to confirm" name="confirm" autocomplete="off" value=${typed}
        onInput=${(e) => setTyped(e.currentTarget.value)} hint=${`Your email is ${email}.`} />
      <${Field} label="Password" name="password" type="password" autocomplete="current-password"
        hint="Signed in with single sign-on and no password? Leave it empty: a sign-in within the last 10 minutes confirms it." />
      <${ErrorText} error=${error} />
      <div class="dialog-bar">
        <button type="button" onClick=${onClose}>Cancel</button>
        ${supported() && html`<button type="button" onClick=${withPasskey} disabled=${!confirmed || busy}>Delete with a passkey</button>`}
        <button type="submit" class="danger" disabled=${!confirmed || busy}>Delete my account</button>
      </div>
    </form>
  </${Modal}>`;
}

export function AccountDataSection() {
  const [open, setOpen] = useState(false);
  const [error, setError] = useState(null);
  async function download() {
    setError(null);
    try {
      const blob = await account.exportData();
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = "parley-account.json";
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    } catch (caught) {
      setError(caught);
    }
  }
  return html`<section aria-labelledby="data-heading">
    <h2 id="data-heading">Your data</h2>
    <p>Download everything Parley holds about you (profile, conversations, usage) as one JSON file, or delete your account.</p>
    <div class="inline">
      <button type="button" onClick=${download}>Download my data</button>
      <button type="button" class="danger" onClick=${() => setOpen(true)}>Delete account</button>
    </div>
    <${ErrorText} error=${error} />
    <${DeleteDialog} open=${open} onClose=${() => setOpen(false)} />
  </section>`;
}
