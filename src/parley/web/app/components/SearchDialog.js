// Search every conversation (Ctrl/Cmd+K): words and meaning, with filters. Snippets are
// built as text around <mark>, never parsed as HTML.
import { html, useEffect, useLayoutEffect, useRef, useState } from "../../vendor/preact.js";
import { search } from "../api/conversations.js";
import { openAt } from "../chat.js";
import { conversations } from "../state.js";
import { ErrorText } from "./ErrorText.js";

/** "a <mark>b</mark> c" as ["a ", <mark>b</mark>, " c"]: text nodes, whatever the text holds. */
export function snippetParts(snippet) {
  const parts = [];
  const pattern = /<mark>([\s\S]*?)<\/mark>/g;
  let last = 0;
  for (const match of snippet.matchAll(pattern)) {
    if (match.index > last) parts.push(snippet.slice(last, match.index));
    parts.push(html`<mark>${match[1]}</mark>`);
    last = match.index + match[0].length;
  }
  if (last < snippet.length) parts.push(snippet.slice(last));
  return parts;
}

export function SearchDialog({ open: isOpen, onClose }) {
  const dialog = useRef(null);
  const [query, setQuery] = useState("");
  const [kind, setKind] = useState("");
  const [role, setRole] = useState("");
  const [results, setResults] = useState(null);
  const [error, setError] = useState(null);

  // Opened before the next key press, not after the next frame, so what is typed right
  // after the shortcut lands in the dialog's field instead of being lost.
  useLayoutEffect(() => {
    const element = dialog.current;
    if (isOpen && !element.open) element.showModal();
    if (!isOpen && element.open) element.close();
  }, [isOpen]);

  useEffect(() => {
    const q = query.trim();
    if (!q) { setResults(null); return undefined; }
    const timer = setTimeout(() => {
      search(q, { kind, role }).then((found) => { setResults(found.results); setError(null); }, setError);
    }, 200);
    return () => clearTimeout(timer);
  }, [query, kind, role]);

  function title(id) {
    return conversations.value.find((c) => c.id === id)?.title || "Conversation";
  }

  async function choose(hit) {
    onClose();
    await openAt(hit.conversation_id, hit.message_id);
  }

  // The field is type=text with the searchbox role: in a type=search field the first Escape
  // clears the text instead of closing the dialog.
  return html`<dialog ref=${dialog} class="search" aria-label="Search conversations" onClose=${onClose}>
    <form method="dialog" class="search-form" onSubmit=${(e) => e.preventDefault()}>
      <input type="text" role="searchbox" aria-label="Search conversations" placeholder="Search conversations"
        value=${query} autofocus onInput=${(e) => setQuery(e.currentTarget.value)} />
      <div class="filters">
        <label>In <select value=${kind} onChange=${(e) => setKind(e.currentTarget.value)}>
          <option value="">messages and titles</option>
          <option value="message">messages</option>
          <option value="title">titles</option>
        </select></label>
        <label>From <select value=${role} onChange=${(e) => setRole(e.currentTarget.value)}>
          <option value="">anyone</option>
          <option value="user">you</option>
          <option value="assistant">the assistant</option>
        </select></label>
        <button type="button" onClick=${onClose}>Close</button>
      </div>
    </form>
    <${ErrorText} error=${error} />
    ${results && results.length === 0 && html`<p class="empty">Nothing found.</p>`}
    ${results && results.length > 0 && html`<ul class="results" aria-label="Search results">
      ${results.map((hit) => html`<li key=${`${hit.conversation_id}:${hit.message_id}`}>
        <button type="button" class="hit" onClick=${() => choose(hit)}>
          <span class="hit-title">${title(hit.conversation_id)}</span>
          <span class="hit-snippet">${snippetParts(hit.snippet)}</span>
        </button>
      </li>`)}
    </ul>`}
  </dialog>`;
}
