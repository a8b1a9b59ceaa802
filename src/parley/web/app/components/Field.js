// A labelled form field: the label names the input for screen readers and tests alike.
import { html, useId } from "../../vendor/preact.js";

export function Field({ label, hint, ...input }) {
  const id = useId();
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <input id=${id} aria-describedby=${hint ? `${id}-hint` : undefined} ...${input} />
    ${hint && html`<p class="hint" id=${`${id}-hint`}>${hint}</p>`}
  </div>`;
}
