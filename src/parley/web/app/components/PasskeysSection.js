// Account settings: the account's passkeys: add one on this device (named), rename, remove.
import { html, useEffect, useState } from "../../vendor/preact.js";
import * as passkeys from "../api/passkeys.js";
import { ErrorText } from "./ErrorText.js";
import { Field } from "./Field.js";

function PasskeyRow({ passkey, onChanged, onError }) {
  const [renaming, setRenaming] = useState(false);
  async function rename(event) {
    event.preventDefault();
    const name = String(new FormData(event.currentTarget).get("name")).trim();
    try { await passkeys.rename(passkey.id, name); setRenaming(false); await onChanged(); } catch (caught) { onError(caught); }
  }
  async function remove() {
    try { await passkeys.remove(passkey.id); await onChanged(); } catch (caught) { onError(caught); }
  }
  const used = passkey.last_used_ms ? `last used ${new Date(passkey.last_used_ms).toLocaleString()}` : "never used";
  return html`<li>
    ${renaming
      ? html`<form onSubmit=${rename} class="inline">
          <${Field} label=${`New name for ${passkey.name}`} name="name" value=${passkey.name} maxlength="100" required autofocus />
          <button type="submit">Save</button>
          <button type="button" onClick=${() => setRenaming(false)}>Cancel</button>
        </form>`
      : html`<span>${passkey.name}</span>`}
    <span class="hint">added ${new Date(passkey.created_ms).toLocaleDateString()} · ${used}</span>
    ${!renaming && html`<button type="button" aria-label=${`Rename ${passkey.name}`} onClick=${() => setRenaming(true)}>Rename</button>`}
    <button type="button" aria-label=${`Remove ${passkey.name}`} onClick=${remove}>Remove</button>
  </li>`;
}

export function PasskeysSection() {
  const [rows, setRows] = useState(null);
  const [error, setError] = useState(null);
  const [added, setAdded] = useState(null);
  const load = () => passkeys.list().then((found) => setRows(found.data), setError);
  useEffect(() => { load(); }, []);
  async function add(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const name = String(new FormData(form).get("name")).trim() || "Passkey";
    setError(null);
    setAdded(null);
    try {
      const made = await passkeys.add(name);
      form.reset();
      await load(); // "added" is said once the list shows it
      setAdded(made.name);
    } catch (caught) {
      setError(caught?.name === "NotAllowedError" ? new Error("The passkey was not created (cancelled or timed out).") : caught);
    }
  }
  return html`<section aria-labelledby="passkeys-heading">
    <h2 id="passkeys-heading">Passkeys</h2>
    <p>Sign in with your device's screen lock or a security key instead of a password. Once you have a passkey, signing in with your password also asks for one.</p>
    ${rows && rows.length > 0 && html`<ul class="passkeys" aria-label="Your passkeys">
      ${rows.map((p) => html`<${PasskeyRow} key=${p.id} passkey=${p} onChanged=${load} onError=${setError} />`)}
    </ul>`}
    ${rows && rows.length === 0 && html`<p class="hint section-note">No passkeys yet.</p>`}
    ${passkeys.supported()
      ? html`<form onSubmit=${add} class="narrow">
          <${Field} label="Passkey name" name="name" maxlength="100" placeholder="e.g. Work laptop" />
          <button type="submit">Add a passkey</button>
        </form>`
      : html`<p class="hint">This browser cannot make passkeys.</p>`}
    ${added && html`<p class="hint" role="status">Passkey “${added}” added.</p>`}
    <${ErrorText} error=${error} />
  </section>`;
}
