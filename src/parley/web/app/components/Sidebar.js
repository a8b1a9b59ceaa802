// The conversation list: newest activity first, a page at a time.
import { html } from "../../vendor/preact.js";
import { loadMore } from "../chat.js";
import { navigate } from "../router.js";
import { conversations, nextCursor, path } from "../state.js";

export function Sidebar() {
  const current = path.value;
  return html`<nav class="sidebar" id="sidebar" aria-label="Conversations">
    <button type="button" class="new-chat" onClick=${() => navigate("/")}>New chat</button>
    <ul class="conversation-list">
      ${conversations.value.map((c) => {
        const href = `/c/${encodeURIComponent(c.id)}`;
        return html`<li key=${c.id}>
          <a href=${href} aria-current=${href === current ? "page" : undefined}>${c.title || "New conversation"}</a>
        </li>`;
      })}
    </ul>
    ${conversations.value.length === 0 && html`<p class="empty">No conversations yet.</p>`}
    ${nextCursor.value && html`<button type="button" class="more" onClick=${loadMore}>Show more</button>`}
  </nav>`;
}
