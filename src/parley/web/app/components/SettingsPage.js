// Account settings. Today: who is signed in, and signing out of every device.
import { html, useState } from "../../vendor/preact.js";
import { logout } from "../api/auth.js";
import { user } from "../state.js";
import { ErrorText } from "./ErrorText.js";

export function SettingsPage() {
  const [error, setError] = useState(null);
  const me = user.value;
  return html`<main class="settings">
    <h1>Settings</h1>
    <section aria-labelledby="account-heading">
      <h2 id="account-heading">Account</h2>
      <p>${me.name} · ${me.email}</p>
      <button type="button" onClick=${() => logout({ everywhere: true }).catch(setError)}>Log out everywhere</button>
      <${ErrorText} error=${error} />
    </section>
  </main>`;
}
