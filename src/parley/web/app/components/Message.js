// One message: the user's as text, the model's as rendered Markdown; its versions
// ("‹ 2 / 3 ›") and what can be done with it.
import { html, useLayoutEffect, useState } from "../../vendor/preact.js";
import {
  busy as answering, downgrades, edit, failures, fork, regenerate, showVersion,
} from "../chat.js";
import { ErrorText } from "./ErrorText.js";
import { Markdown } from "./Markdown.js";

export function textOf(content) {
  if (typeof content === "string") return content;
  return (content || []).filter((p) => p.type === "text").map((p) => p.text).join("");
}

function Versions({ message, busy }) {
  const ids = message.version_ids || [];
  if (ids.length < 2) return null;
  const at = ids.indexOf(message.id);
  return html`<span class="versions">
    <button type="button" class="icon" aria-label="Previous version" disabled=${busy || at <= 0}
      onClick=${() => showVersion(ids[at - 1])}>‹</button>
    <span><span class="visually-hidden">Version </span>${at + 1} / ${ids.length}</span>
    <button type="button" class="icon" aria-label="Next version" disabled=${busy || at >= ids.length - 1}
      onClick=${() => showVersion(ids[at + 1])}>›</button>
  </span>`;
}

function CopyButton({ text }) {
  const [copied, setCopied] = useState(false);
  async function copy() {
    await navigator.clipboard.writeText(text);
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  }
  return html`<button type="button" aria-label="Copy" onClick=${copy}>${copied ? "Copied" : "Copy"}</button>`;
}

function EditForm({ message, onDone }) {
  const [text, setText] = useState(textOf(message.content));
  function submit(event) {
    event.preventDefault();
    if (!text.trim()) return;
    onDone();
    edit(message, text);
  }
  return html`<form class="edit" onSubmit=${submit}>
    <textarea aria-label="Edit message" value=${text} rows="3"
      onInput=${(e) => setText(e.currentTarget.value)}
      onKeyDown=${(e) => { if (e.key === "Escape") onDone(); }}></textarea>
    <div class="edit-bar">
      <button type="button" onClick=${onDone}>Cancel</button>
      <button type="submit" class="primary">Save and send</button>
    </div>
  </form>`;
}

/** Which model wrote an answer; when a budget sent it to a cheaper one, which it was
 * asked of, said as this tab saw it happen. */
function ModelLine({ message }) {
  const asked = message.downgradedFrom ?? (message.id ? downgrades.value.get(message.id) : null);
  if (asked && asked !== message.model) {
    return html`<p class="status model">Answered by ${message.model} instead of ${asked}: a budget for ${asked} is spent.</p>`;
  }
  return html`<p class="status model">${message.model}</p>`;
}

/**
 * `live`, for the answer being written, returns it as a message: only this component reads
 * it, so a delta redraws this message alone; `onDrawn` runs after each redraw, before the
 * frame is painted (the view keeps its end in sight).
 */
export function Message({ message: given, live = null, onDrawn = null, streaming = false, readOnly = false }) {
  const [editing, setEditing] = useState(false);
  useLayoutEffect(() => { onDrawn?.(); });
  const message = live?.() ?? given;
  if (!message) return null;
  const { role, content, status } = message;
  const error = message.error ?? (message.id ? failures.value.get(message.id) : null);
  const text = textOf(content);
  const busy = answering.value; // not answer.value: a delta must not redraw every message
  const saved = !readOnly && message.id && !message.pending && !streaming;
  const label = role === "user" ? "You" : "Assistant";
  return html`<article class=${`message ${role}`} aria-label=${label} aria-busy=${streaming ? "true" : undefined}
    id=${message.id ? `m-${message.id}` : undefined} tabindex=${message.id ? "-1" : undefined}>
    <div class="bubble">
      ${editing
        ? html`<${EditForm} message=${message} onDone=${() => setEditing(false)} />`
        : role === "user"
          ? html`<p class="plain">${text}</p>`
          : html`<${Markdown} text=${text} streaming=${streaming} />`}
      ${status === "stopped" && html`<p class="status">Stopped.</p>`}
      ${role === "assistant" && message.model && html`<${ModelLine} message=${message} />`}
      ${error ? html`<${ErrorText} error=${error} />`
        : status === "error" && html`<p class="error">This answer did not finish.</p>`}
      ${saved && !editing && html`<div class="actions">
        <${Versions} message=${message} busy=${busy} />
        ${role === "user" && html`<button type="button" disabled=${busy} onClick=${() => setEditing(true)}>Edit</button>`}
        ${role === "assistant" && text && html`<${CopyButton} text=${text} />`}
        ${role === "assistant" && html`<button type="button" disabled=${busy} onClick=${() => regenerate(message)}>${status === "error" ? "Retry" : "Regenerate"}</button>`}
        <button type="button" disabled=${busy} onClick=${() => fork(message.id)}>Fork</button>
      </div>`}
    </div>
  </article>`;
}
