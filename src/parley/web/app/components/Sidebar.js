// The conversation list: pinned first, then newest activity, a page at a time; rename in
// place, pin, archive, tag (and show one tag's conversations), and delete with a moment to
// undo.
import { html, useLayoutEffect, useRef, useState } from "../../vendor/preact.js";
import {
  change, loadMore, loadSidebar, pendingDelete, removeLater, showArchived, tagFilter, undoDelete,
} from "../chat.js";
import { navigate } from "../router.js";
import { ConsoleLink } from "../console.js";
import { ImportButton } from "./ImportButton.js";
import { conversations, nextCursor, path, user } from "../state.js";

function RenameForm({ conversation, onDone }) {
  const [title, setTitle] = useState(conversation.title || "");
  const input = useRef(null);
  // Before the next key press, not after the next frame: a fast typist's first letters
  // would go nowhere and the rest would replace the selected title.
  useLayoutEffect(() => { input.current?.select(); }, []);
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

/** Tags as the user typed them: split on commas, trimmed, no empties or repeats. */
export function parseTags(text) {
  const seen = new Set();
  for (const part of text.split(",")) {
    const tag = part.trim().slice(0, 40);
    if (tag) seen.add(tag);
  }
  return [...seen].slice(0, 32);
}

function TagsForm({ conversation, title, onDone }) {
  const [text, setText] = useState((conversation.tags || []).join(", "));
  const input = useRef(null);
  useLayoutEffect(() => { input.current?.focus(); }, []);
  async function submit(event) {
    event.preventDefault();
    const tags = parseTags(text);
    if (tags.join("\n") !== (conversation.tags || []).join("\n")) await change(conversation.id, { tags });
    onDone();
  }
  return html`<form class="rename" onSubmit=${submit}>
    <input ref=${input} aria-label=${`Tags for ${title}`} value=${text} placeholder="work, ideas"
      aria-describedby="tags-hint" onInput=${(e) => setText(e.currentTarget.value)}
      onKeyDown=${(e) => { if (e.key === "Escape") onDone(); }} onBlur=${submit} />
    <span id="tags-hint" class="hint">Separate tags with commas; Enter saves.</span>
  </form>`;
}

function showTag(tag) {
  tagFilter.value = tag;
  loadSidebar();
}

function Item({ conversation, current }) {
  const [editing, setEditing] = useState(null); // "title" | "tags" | null
  const href = `/c/${encodeURIComponent(conversation.id)}`;
  const title = conversation.title || "New conversation";
  const done = () => setEditing(null);
  if (editing === "title") return html`<li><${RenameForm} conversation=${conversation} onDone=${done} /></li>`;
  if (editing === "tags") return html`<li><${TagsForm} conversation=${conversation} title=${title} onDone=${done} /></li>`;
  const tags = conversation.tags || [];
  return html`<li class=${conversation.pinned ? "pinned" : undefined}>
    <a href=${href} aria-current=${href === current ? "page" : undefined}>
      ${conversation.pinned && html`<span class="pin-mark" aria-hidden="true">★ </span>`}${title}
    </a>
    ${tags.length > 0 && html`<ul class="tags" aria-label=${`Tags of ${title}`}>
      ${tags.map((tag) => html`<li key=${tag}><button type="button" class="tag"
        aria-label=${`Show conversations tagged ${tag}`} onClick=${() => showTag(tag)}>${tag}</button></li>`)}
    </ul>`}
    <div class="item-actions">
      <button type="button" aria-label=${`Rename ${title}`} onClick=${() => setEditing("title")}>Rename</button>
      <button type="button" aria-label=${`Tags ${title}`} onClick=${() => setEditing("tags")}>Tags</button>
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
  const empty = tagFilter.value ? "No conversations with this tag."
    : showArchived.value ? "Nothing archived." : "No conversations yet.";
  return html`<nav class="sidebar" id="sidebar" aria-label="Conversations">
    <button type="button" class="new-chat" onClick=${() => navigate("/")}>New chat</button>
    ${showArchived.value && html`<h2 class="list-heading">Archived</h2>`}
    ${tagFilter.value && html`<div class="tag-filter">
      <h2 class="list-heading">Tagged “${tagFilter.value}”</h2>
      <button type="button" onClick=${() => showTag(null)}>Show all conversations</button>
    </div>`}
    <ul class="conversation-list">
      ${[...pinned, ...rest].map((c) => html`<${Item} key=${c.id} conversation=${c} current=${current} />`)}
    </ul>
    ${list.length === 0 && html`<p class="empty">${empty}</p>`}
    ${nextCursor.value && html`<button type="button" class="more" onClick=${loadMore}>Show more</button>`}
    <button type="button" class="archived-toggle" aria-pressed=${showArchived.value ? "true" : "false"}
      onClick=${toggleArchived}>${showArchived.value ? "Back to conversations" : "Archived conversations"}</button>
    <${ImportButton} />
    <${ConsoleLink} user=${user.value} inSidebar=${true} />
    ${pendingDelete.value && html`<div class="undo" role="status">
      <span>Deleted “${pendingDelete.value.conversation.title || "New conversation"}”.</span>
      <button type="button" onClick=${undoDelete}>Undo</button>
    </div>`}
  </nav>`;
}
