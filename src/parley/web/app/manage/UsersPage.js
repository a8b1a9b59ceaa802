// Users (global admins): disable or enable an account, hand over a password-reset link,
// reset two-factor sign-in for someone locked out of their authenticator.
import { html, useEffect, useState } from "../../vendor/preact.js";
import { ErrorText } from "../components/ErrorText.js";
import { Modal } from "../components/Modal.js";
import { user } from "../state.js";
import * as admin from "./api.js";
import { Cell, Confirm, SecretBox } from "./widgets.js";

const PAGE = 100;

function ResetLink({ person, onClose }) {
  const [made, setMade] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => { admin.passwordResetLink(person.id).then(setMade, setError); }, [person.id]);
  const title = `Password reset for ${person.email}`;
  return html`<${Modal} label=${title} open=${true} onClose=${onClose}>
    <h2>${title}</h2>
    <${ErrorText} error=${error} />
    ${!made && !error && html`<p class="boot" role="status">Making a link…</p>`}
    ${made && html`<${SecretBox} label="Reset link" secret=${made.reset_url}
      note=${`Give this one-time link to ${person.name}; it works for ${Math.round(made.expires_in / 60)} minutes and sets a new password.`} />`}
    <div class="dialog-bar"><button type="button" class="primary" onClick=${onClose}>Done</button></div>
  </${Modal}>`;
}

export function UsersPage() {
  const [people, setPeople] = useState([]);
  const [more, setMore] = useState(false);
  const [error, setError] = useState(null);
  const [dialog, setDialog] = useState(null); // {kind, person}
  const me = user.value?.id;

  async function load(offset = 0) {
    setError(null);
    try {
      const { data } = await admin.listUsers(offset, PAGE);
      setPeople((before) => (offset ? [...before, ...data] : data));
      setMore(data.length === PAGE);
    } catch (caught) {
      setError(caught);
    }
  }
  useEffect(() => { load(); }, []);

  async function setDisabled(person, disabled) {
    setError(null);
    try {
      await admin.updateUser(person.id, { disabled });
      setPeople((list) => list.map((p) => (p.id === person.id ? { ...p, disabled } : p)));
    } catch (caught) {
      setError(caught);
    }
  }

  const close = () => setDialog(null);
  return html`<h1>Users</h1>
    <${ErrorText} error=${error} />
    <div class="table-scroll" tabindex="0"><table class="console-table" role="table">
      <caption class="visually-hidden">Users</caption>
      <thead role="rowgroup"><tr role="row"><th role="columnheader">Name</th><th role="columnheader">Email</th><th role="columnheader">Role</th><th role="columnheader">Two-factor</th><th role="columnheader">Status</th><th role="columnheader"><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody role="rowgroup">${people.map((p) => html`<tr role="row" key=${p.id}>
        <${Cell} label="Name">${p.name}${p.id === me ? " (you)" : ""}</${Cell}>
        <${Cell} label="Email">${p.email}</${Cell}>
        <${Cell} label="Role">${p.is_admin ? "Admin" : "User"}</${Cell}>
        <${Cell} label="Two-factor">${p.mfa_enabled ? "On" : "Off"}</${Cell}>
        <${Cell} label="Status">${p.disabled ? "Disabled" : "Active"}</${Cell}>
        <${Cell} label="Actions"><div class="row-actions">
          ${p.id !== me && (p.disabled
            ? html`<button type="button" onClick=${() => setDisabled(p, false)}>Enable</button>`
            : html`<button type="button" class="danger" onClick=${() => setDialog({ kind: "disable", person: p })}>Disable</button>`)}
          <button type="button" onClick=${() => setDialog({ kind: "password", person: p })}>Reset password</button>
          ${p.mfa_enabled && html`<button type="button" onClick=${() => setDialog({ kind: "mfa", person: p })}>Reset MFA</button>`}
        </div></${Cell}>
      </tr>`)}</tbody>
    </table></div>
    ${more && html`<button type="button" class="more" onClick=${() => load(people.length)}>More users</button>`}
    ${dialog?.kind === "disable" && html`<${Confirm} title=${`Disable ${dialog.person.email}`} action="Disable"
      onConfirm=${() => setDisabled(dialog.person, true)} onClose=${close}>
      <p>${dialog.person.name} is signed out everywhere and cannot sign in until enabled again.</p>
    </${Confirm}>`}
    ${dialog?.kind === "mfa" && html`<${Confirm} title=${`Reset two-factor sign-in for ${dialog.person.email}`} action="Reset MFA"
      onConfirm=${async () => { await admin.resetMfa(dialog.person.id); await load(); }} onClose=${close}>
      <p>Their authenticator app and recovery codes stop working and every session ends; they sign in with their password and may set up two-factor again. The reset is written to the audit log.</p>
    </${Confirm}>`}
    ${dialog?.kind === "password" && html`<${ResetLink} person=${dialog.person} onClose=${close} />`}`;
}
