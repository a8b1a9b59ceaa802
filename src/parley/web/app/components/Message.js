// One message: the user's as text, the model's as rendered Markdown.
import { html } from "../../vendor/preact.js";
import { describe } from "./ErrorText.js";
import { Markdown } from "./Markdown.js";

export function textOf(content) {
  if (typeof content === "string") return content;
  return (content || []).filter((p) => p.type === "text").map((p) => p.text).join("");
}

export function Message({ role, content, status, error, streaming = false }) {
  const text = textOf(content);
  const label = role === "user" ? "You" : "Assistant";
  return html`<article class=${`message ${role}`} aria-label=${label} aria-busy=${streaming ? "true" : undefined}>
    <div class="bubble">
      ${role === "user" ? html`<p class="plain">${text}</p>` : html`<${Markdown} text=${text} streaming=${streaming} />`}
      ${status === "stopped" && html`<p class="status">Stopped.</p>`}
      ${error && html`<p class="error" role="alert">${describe(error)}</p>`}
    </div>
  </article>`;
}
