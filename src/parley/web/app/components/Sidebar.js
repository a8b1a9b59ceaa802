// The conversation list: pinned first, then newest activity, a page at a time; rename in
// place, pin, archive, and delete with a moment to undo.
import { html, useEffect, useRef, useState } from "../../vendor/preact.js";
import {
  change, loadMore, loadSidebar, pendingDelete, removeLater, showArchived, undoDelete,
} from "../chat.js";
import { navigate } from "../router.js";
import { ImportButton } from "./ImportButton.js";
import { conversations, nextCursor, path } from "../state.js";

function RenameForm({ conversation, onDone }) {
  const [title, setTitle] = useState(conversation.title || "");
  const input = useRef(null);
  useEffect(() => { input.current?.select(); }, []);
  async function submit(event) {
    event.preventDefault();
    const next = title.trim();
    if (next && next !== conversation.title) await change(conversation.id, { title: next });
    onDone();
  }
  return html`<form class="rename" onSubmit=${submit}>
    <input ref=${input} aria-label="Conversation title" value=${title} maxlength="300"
      onInput=${(e) => setTitle(e.currentTarget.value)}
      onKeyDown=${(e) => { if (e.key === "Escape") onDone(); }} onBlur=${submit} />
  </form>`;
}

function Item({ conversation, current }) {
  const [renaming, setRenaming] = useState(false);
  const href = `/c/${encodeURIComponent(conversation.id)}`;
  const title = conversation.title || "New conversation";
  if (renaming) return html`<li><${RenameForm} conversation=${conversation} onDone=${() => setRenaming(false)} /></li>`;
  return html`<li class=${conversation.pinned ? "pinned" : undefined}>
    <a href=${href} aria-current=${href === current ? "page" : undefined}>
      ${conversation.pinned && html`<span class="pin-mark" aria-hidden="true">★ </span>`}${title}
    </a>
    <div class="item-actions">
      <button type="button" aria-label=${`Rename ${title}`} onClick=${() => setRenaming(true)}>Rename</button>
      <button type="button" aria-label=${`${conversation.pinned ? "Unpin" : "Pin"} ${title}`}
        onClick=${() => change(conversation.id, { pinned: !conversation.pinned })}>${conversation.pinned ? "Unpin" : "Pin"}</button>
      <button type="button" aria-label=${`${conversation.archived ? "Unarchive" : "Archive"} ${title}`}
        onClick=${() => change(conversation.id, { archived: !conversation.archived })}>${conversation.archived ? "Unarchive" : "Archive"}</button>
      <button type="button" aria-label=${`Delete ${title}`} onClick=${() => removeLater(conversation)}>Delete</button>
    </div>
  </li>`;
}

export function Sidebar() {
  const current = path.value;
  const list = conversations.value;
  const pinned = list.filter((c) => c.pinned);
  const rest = list.filter((c) => !c.pinned);
  function toggleArchived() {
    showArchived.value = !showArchived.value;
    loadSidebar();
  }
  return html`<nav class="sidebar" id="sidebar" aria-label="Conversations">
    <button type="button" class="new-chat" onClick=${() => navigate("/")}>New chat</button>
    ${showArchived.value && html`<h2 class="list-heading">Archived</h2>`}
    <ul class="conversation-list">
      ${[...pinned, ...rest].map((c) => html`<${Item} key=${c.id} conversation=${c} current=${current} />`)}
    </ul>
    ${list.length === 0 && html`<p class="empty">${showArchived.value ? "Nothing archived." : "No conversations yet."}</p>`}
    ${nextCursor.value && html`<button type="button" class="more" onClick=${loadMore}>Show more</button>`}
    <button type="button" class="archived-toggle" aria-pressed=${showArchived.value ? "true" : "false"}
      onClick=${toggleArchived}>${showArchived.value ? "Back to conversations" : "Archived conversations"}</button>
    <${ImportButton} />
    ${pendingDelete.value && html`<div class="undo" role="status">
      <span>Deleted “${pendingDelete.value.conversation.title || "New conversation"}”.</span>
      <button type="button" onClick=${undoDelete}>Undo</button>
    </div>`}
  </nav>`;
}
