// Share links for the open conversation: make one (shown once, with a copy button), see
// the ones that exist, revoke them.
import { html, useEffect, useState } from "../../vendor/preact.js";
import * as shares from "../api/shares.js";
import { open } from "../chat.js";
import { ErrorText } from "./ErrorText.js";
import { Modal } from "./Modal.js";

export function ShareDialog({ isOpen, onClose }) {
  const conversationId = open.value?.conversation.id;
  const [list, setList] = useState([]);
  const [made, setMade] = useState(null);
  const [copied, setCopied] = useState(false);
  const [error, setError] = useState(null);

  useEffect(() => {
    if (!isOpen || !conversationId) return;
    setMade(null);
    setError(null);
    shares.list(conversationId).then((found) => setList(found.data), setError);
  }, [isOpen, conversationId]);

  async function create() {
    try {
      const share = await shares.create(conversationId);
      // The API's `path` is its JSON route; people get the page that renders it.
      setMade(new URL(`/s/${encodeURIComponent(share.token)}`, location.origin).href);
      setCopied(false);
      setList([share, ...list]);
    } catch (caught) {
      setError(caught);
    }
  }

  async function revoke(shareId) {
    try {
      await shares.revoke(conversationId, shareId);
      setList(list.filter((s) => s.id !== shareId));
    } catch (caught) {
      setError(caught);
    }
  }

  async function copy() {
    await navigator.clipboard.writeText(made);
    setCopied(true);
  }

  return html`<${Modal} label="Share conversation" open=${isOpen} onClose=${onClose}>
    <h2>Share conversation</h2>
    <p class="hint">A link shows a read-only copy of this branch as it is now. Anyone with the link can read it.</p>
    ${made
      ? html`<div class="inline">
          <label for="share-link" class="visually-hidden">Share link</label>
          <input id="share-link" readonly value=${made} onFocus=${(e) => e.currentTarget.select()} />
          <button type="button" onClick=${copy}>${copied ? "Copied" : "Copy link"}</button>
        </div>`
      : html`<button type="button" class="primary" onClick=${create}>Create link</button>`}
    ${list.length > 0 && html`<h3>Links</h3><ul class="share-list">
      ${list.map((s) => html`<li key=${s.id}>
        <span>Made ${new Date(s.created_ms).toLocaleString()}${s.expires_ms ? `, expires ${new Date(s.expires_ms).toLocaleDateString()}` : ""}</span>
        <button type="button" onClick=${() => revoke(s.id)}>Revoke</button>
      </li>`)}
    </ul>`}
    <${ErrorText} error=${error} />
    <div class="dialog-bar"><button type="button" onClick=${onClose}>Done</button></div>
  <//>`;
}
