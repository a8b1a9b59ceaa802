// Small pieces the console's pages share: a secret shown once, a confirmation, a table cell
// that carries its column's name (narrow screens stack a row's cells under their names).
// Table elements carry their roles explicitly: narrow screens lay rows out as cards
// (display: block), which would otherwise drop the table semantics in Chromium.
import { html, useState } from "../../vendor/preact.js";
import { ErrorText } from "../components/ErrorText.js";
import { Modal } from "../components/Modal.js";

/** A secret the API shows once: read-only, selected on focus, with a Copy button. */
export function SecretBox({ label, secret, note }) {
  const [copied, setCopied] = useState(false);
  async function copy() {
    await navigator.clipboard.writeText(secret);
    setCopied(true);
  }
  return html`<div class="secret">
    <p class="hint">${note}</p>
    <div class="inline">
      <label class="visually-hidden" for="console-secret">${label}</label>
      <input id="console-secret" readonly value=${secret} spellcheck="false"
        onFocus=${(e) => e.currentTarget.select()} />
      <button type="button" onClick=${copy}>Copy</button>
    </div>
    <p class="hint" role="status">${copied ? "Copied to the clipboard." : ""}</p>
  </div>`;
}

/** "Are you sure?" with the action's own name on its button (e.g. "Revoke"). */
export function Confirm({ title, children, action, danger = true, onConfirm, onClose }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  async function confirm() {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      onClose();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  }
  return html`<${Modal} label=${title} open=${true} onClose=${onClose}>
    <h2>${title}</h2>
    ${children}
    <${ErrorText} error=${error} />
    <div class="dialog-bar">
      <button type="button" onClick=${onClose}>Cancel</button>
      <button type="button" class=${danger ? "danger" : "primary"} disabled=${busy} onClick=${confirm}>${action}</button>
    </div>
  </${Modal}>`;
}

/** A table cell labelled with its column (shown above the value on narrow screens). */
export function Cell({ label, children }) {
  return html`<td role="cell" data-label=${label}><div>${children}</div></td>`;
}

/** A form field of the console: label, input, optional hint, and the API's problem with
 * it (``error``), shown below it and read with it. */
export function Input({ label, name, hint, error, ...input }) {
  const id = `console-${name}`;
  const described = [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(" ");
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <input id=${id} name=${name} aria-describedby=${described || undefined} aria-invalid=${error ? "true" : undefined} ...${input} />
    ${hint && html`<p class="hint" id=${`${id}-hint`}>${hint}</p>`}
    ${error && html`<p class="error field-error" id=${`${id}-error`}>${error}</p>`}
  </div>`;
}

/** A labelled select: controlled when given onChange, else it starts at ``value`` and is
 * left to the person (a re-render, say for an error, must not undo their choice). */
export function Select({ label, name, options, value, onChange, ...rest }) {
  const id = `console-${name}`;
  const controlled = onChange !== undefined;
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <select id=${id} name=${name} value=${controlled ? value : undefined} onChange=${onChange} ...${rest}>
      ${options.map(([v, text]) => html`<option value=${v} selected=${!controlled && v === value}>${text}</option>`)}
    </select>
  </div>`;
}
