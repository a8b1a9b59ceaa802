// Account settings: password, two-factor sign-in, where the account is signed in.
import { html, useEffect, useState } from "../../vendor/preact.js";
import * as account from "../api/account.js";
import { logout } from "../api/auth.js";
import { user } from "../state.js";
import { ErrorText } from "./ErrorText.js";
import { Field } from "./Field.js";
import { AccountDataSection } from "./AccountDataSection.js";
import { PasskeysSection } from "./PasskeysSection.js";

/** The policy's rules a browser can check as the user types (the server checks them all,
 * and the common-password list too). */
export function passwordProblems(password, me) {
  const problems = [];
  if (password.length < 12) problems.push("at least 12 characters");
  const lower = password.toLowerCase();
  const local = (me?.email || "").split("@")[0].toLowerCase();
  if (local.length >= 3 && lower.includes(local)) problems.push("not containing your email's name");
  const name = (me?.name || "").toLowerCase();
  if (name.length >= 3 && name.split(/\s+/).some((part) => part.length >= 3 && lower.includes(part))) {
    problems.push("not containing your name");
  }
  return problems;
}

function PasswordSection() {
  const [next, setNext] = useState("");
  const [error, setError] = useState(null);
  const [done, setDone] = useState(false);
  const problems = next ? passwordProblems(next, user.value) : [];
  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setError(null);
    setDone(false);
    try {
      await account.changePassword(String(form.get("current")), next);
      setDone(true);
      setNext("");
      event.currentTarget.reset();
    } catch (caught) {
      setError(caught);
    }
  }
  return html`<section aria-labelledby="password-heading">
    <h2 id="password-heading">Password</h2>
    <form onSubmit=${submit} class="narrow">
      <${Field} label="Current password" name="current" type="password" autocomplete="current-password" required />
      <${Field} label="New password" name="next" type="password" autocomplete="new-password" required
        value=${next} onInput=${(e) => setNext(e.currentTarget.value)}
        hint=${problems.length ? `Needs: ${problems.join("; ")}.` : "At least 12 characters; not a common password, your name or your email."} />
      <${ErrorText} error=${error} />
      ${done && html`<p class="hint" role="status">Password changed. Your other sessions were signed out.</p>`}
      <button type="submit" disabled=${problems.length > 0}>Change password</button>
    </form>
  </section>`;
}

function MfaSection() {
  const [enabled, setEnabled] = useState(Boolean(user.value?.mfa_enabled));
  const [enrolling, setEnrolling] = useState(null);
  const [codes, setCodes] = useState(null);
  const [error, setError] = useState(null);
  async function start() {
    setError(null);
    try { setEnrolling(await account.enrollMfa()); } catch (caught) { setError(caught); }
  }
  async function verify(event) {
    event.preventDefault();
    const code = String(new FormData(event.currentTarget).get("code")).trim();
    try {
      const result = await account.verifyMfa(code);
      setCodes(result.recovery_codes);
      setEnrolling(null);
      setEnabled(true);
    } catch (caught) { setError(caught); }
  }
  async function disable(event) {
    event.preventDefault();
    const code = String(new FormData(event.currentTarget).get("code")).trim();
    try { await account.disableMfa(code); setEnabled(false); setCodes(null); } catch (caught) { setError(caught); }
  }
  return html`<section aria-labelledby="mfa-heading">
    <h2 id="mfa-heading">Two-factor sign-in</h2>
    ${codes && html`<div class="codes" role="status">
      <p>Two-factor sign-in is on. Keep these recovery codes somewhere safe: each works once, and they are not shown again.</p>
      <ul aria-label="Recovery codes">${codes.map((c) => html`<li key=${c}><code>${c}</code></li>`)}</ul>
    </div>`}
    ${!enabled && !enrolling && html`<p>Off. Turn it on to ask for a code from an authenticator app at sign-in.</p>
      <button type="button" onClick=${start}>Set up two-factor sign-in</button>`}
    ${enrolling && html`<form onSubmit=${verify} class="narrow">
      <p>Scan this code with your authenticator app, or enter the key by hand.</p>
      <img class="qr" src=${enrolling.qr_svg} alt="QR code for your authenticator app" width="200" height="200" />
      <p class="hint">Key: <code>${enrolling.secret}</code></p>
      <${Field} label="Code from the app" name="code" inputmode="numeric" autocomplete="one-time-code" required />
      <button type="submit" class="primary">Turn on</button>
    </form>`}
    ${enabled && !codes && html`<form onSubmit=${disable} class="narrow">
      <p>On.</p>
      <${Field} label="Code to turn it off" name="code" inputmode="numeric" autocomplete="one-time-code" required />
      <button type="submit">Turn off two-factor sign-in</button>
    </form>`}
    <${ErrorText} error=${error} />
  </section>`;
}

function SessionsSection() {
  const [rows, setRows] = useState(null);
  const [error, setError] = useState(null);
  const load = () => account.sessions().then((found) => setRows(found.data), setError);
  useEffect(() => { load(); }, []);
  async function revoke(id) {
    try { await account.revokeSession(id); await load(); } catch (caught) { setError(caught); }
  }
  return html`<section aria-labelledby="sessions-heading">
    <h2 id="sessions-heading">Where you are signed in</h2>
    ${rows && html`<ul class="sessions">
      ${rows.map((s) => html`<li key=${s.id}>
        <span title=${s.user_agent || ""}>${s.device || s.user_agent || "Unknown device"}${s.ip ? ` · ${s.ip}` : ""}${s.current ? " · this browser" : ""}</span>
        <span class="hint">since ${new Date(s.created_ms).toLocaleString()} · last used ${new Date(s.last_used_ms).toLocaleString()}</span>
        ${!s.current && html`<button type="button" onClick=${() => revoke(s.id)}>Sign out</button>`}
      </li>`)}
    </ul>`}
    <button type="button" onClick=${() => logout({ everywhere: true }).catch(setError)}>Log out everywhere</button>
    <${ErrorText} error=${error} />
  </section>`;
}

export function SettingsPage() {
  const me = user.value;
  return html`<main class="settings">
    <h1>Settings</h1>
    <p>${me.name} · ${me.email}</p>
    <${PasswordSection} />
    <${MfaSection} />
    <${PasskeysSection} />
    <${SessionsSection} />
    <${AccountDataSection} />
  </main>`;
}
