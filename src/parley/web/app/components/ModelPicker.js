// The model group the next message goes to (a native select: a combobox named "Model").
import { html } from "../../vendor/preact.js";
import { chosenModel } from "../chat.js";
import { models, user } from "../state.js";

export function ModelPicker() {
  if (models.value.length === 0) {
    return user.value?.is_admin
      ? html`<p class="hint">No models are configured yet: set OPENAI_API_KEY (or another
          provider's key) or start Parley with --config FILE; see docs/configuration.md.</p>`
      : html`<p class="hint">No models are configured: ask an admin to add one.</p>`;
  }
  return html`<label class="model-picker">
    <span class="visually-hidden">Model</span>
    <select aria-label="Model" value=${chosenModel.value ?? ""}
      onChange=${(e) => { chosenModel.value = e.currentTarget.value; }}>
      ${models.value.map((name) => html`<option key=${name} value=${name}>${name}</option>`)}
    </select>
  </label>`;
}
