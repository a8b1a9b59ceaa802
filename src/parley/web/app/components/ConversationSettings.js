// A conversation's settings (system prompt, temperature, top_p, max_tokens) and presets.
// A change that lost a race with another tab or device is refused by the server (409):
// the form offers to reload rather than overwrite.
import { html, useLayoutEffect, useRef, useState } from "../../vendor/preact.js";
import * as presets from "../api/presets.js";
import { open, reloadOpen, saveSettings } from "../chat.js";
import { ErrorText } from "./ErrorText.js";
import { Modal } from "./Modal.js";

function fromForm(form) {
  const data = new FormData(form);
  const settings = {};
  const prompt = String(data.get("system_prompt") || "").trim();
  if (prompt) settings.system_prompt = prompt;
  for (const name of ["temperature", "top_p", "max_tokens"]) {
    const raw = String(data.get(name) || "").trim();
    if (raw !== "") settings[name] = name === "max_tokens" ? parseInt(raw, 10) : Number(raw);
  }
  return settings;
}

/** A preset's name, edited in place: Enter or leaving the field saves, Escape cancels. */
function PresetName({ preset, onDone }) {
  const input = useRef(null);
  const finished = useRef(false); // Enter, then the blur of the field going away: once
  useLayoutEffect(() => { input.current?.select(); }, []);
  function finish(name) {
    if (finished.current) return;
    finished.current = true;
    onDone(name);
  }
  function keydown(event) {
    if (event.key === "Enter") { event.preventDefault(); finish(event.currentTarget.value.trim()); }
    if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); finish(null); }
  }
  return html`<input ref=${input} aria-label=${`Name of preset ${preset.name}`} maxlength="100"
    value=${preset.name} onKeyDown=${keydown} onBlur=${(e) => finish(e.currentTarget.value.trim())} />`;
}

export function ConversationSettings({ isOpen, onClose }) {
  const conversation = open.value?.conversation;
  const [values, setValues] = useState({});
  const [list, setList] = useState([]);
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState(null);
  const [version, setVersion] = useState(null); // what the form was filled from
  const [renaming, setRenaming] = useState(null); // the id of the preset being renamed

  // Filled before the dialog is first painted (it may be opened as it mounts, lazy.js):
  // nobody sees, or reads, an empty form.
  useLayoutEffect(() => {
    if (!isOpen || !conversation) return;
    setValues({ ...(conversation.settings || {}) });
    setVersion(conversation.version);
    setError(null);
    setSaved(null);
    presets.list().then((found) => setList(found.data), setError);
  }, [isOpen]);

  function field(name) {
    return { name, value: values[name] ?? "", onInput: (e) => setValues({ ...values, [name]: e.currentTarget.value }) };
  }

  async function save(event) {
    event.preventDefault();
    setError(null);
    try {
      await saveSettings(fromForm(event.currentTarget), version);
      onClose();
    } catch (caught) {
      setError(caught);
    }
  }

  async function saveAsPreset(event) {
    const form = event.currentTarget.form;
    const name = String(new FormData(form).get("preset_name") || "").trim();
    if (!name) { setError({ message: "Give the preset a name." }); return; }
    try {
      const made = await presets.create({ name, model: conversation.model, settings: fromForm(form) });
      setList([...list, made]);
      form.elements.preset_name.value = "";
      setSaved(`Saved preset “${made.name}”.`);
    } catch (caught) {
      setError(caught);
    }
  }

  function apply(presetId) {
    const preset = list.find((p) => p.id === presetId);
    if (preset) setValues({ ...(preset.settings || {}) });
  }

  /** Overwrite a preset with what the form holds now (and this conversation's model). */
  async function updatePreset(event, preset) {
    try {
      const fields = { settings: fromForm(event.currentTarget.form) };
      if (conversation.model) fields.model = conversation.model;
      const updated = await presets.update(preset.id, fields);
      setList(list.map((p) => (p.id === preset.id ? updated : p)));
      setSaved(`Updated preset “${updated.name}”.`);
    } catch (caught) {
      setError(caught);
    }
  }

  async function renamePreset(preset, name) {
    setRenaming(null);
    if (!name || name === preset.name) return;
    try {
      const updated = await presets.update(preset.id, { name });
      setList(list.map((p) => (p.id === preset.id ? updated : p)));
      setSaved(`Renamed preset to “${updated.name}”.`);
    } catch (caught) {
      setError(caught);
    }
  }

  async function removePreset(presetId) {
    try {
      await presets.remove(presetId);
      setList(list.filter((p) => p.id !== presetId));
    } catch (caught) {
      setError(caught);
    }
  }

  const conflict = error?.code === "conversation_changed";
  return html`<${Modal} label="Conversation settings" open=${isOpen} onClose=${onClose}>
    <form class="settings-form" onSubmit=${save}>
      <h2>Conversation settings</h2>
      <label for="cs-prompt">System prompt</label>
      <textarea id="cs-prompt" rows="4" ...${field("system_prompt")}></textarea>
      <div class="grid3">
        <div class="field"><label for="cs-temp">Temperature</label>
          <input id="cs-temp" type="number" min="0" max="2" step="0.1" ...${field("temperature")} /></div>
        <div class="field"><label for="cs-top">Top p</label>
          <input id="cs-top" type="number" min="0" max="1" step="0.05" ...${field("top_p")} /></div>
        <div class="field"><label for="cs-max">Max tokens</label>
          <input id="cs-max" type="number" min="1" step="1" ...${field("max_tokens")} /></div>
      </div>
      <fieldset class="presets">
        <legend>Presets</legend>
        ${list.length === 0 && html`<p class="hint">No presets yet.</p>`}
        <ul>
          ${list.map((p) => html`<li key=${p.id}>
            ${renaming === p.id
              ? html`<${PresetName} preset=${p} onDone=${(name) => renamePreset(p, name)} />`
              : html`<span>${p.name}</span>`}
            <button type="button" onClick=${() => apply(p.id)} aria-label=${`Apply preset ${p.name}`}>Apply</button>
            <button type="button" onClick=${(e) => updatePreset(e, p)}
              aria-label=${`Update preset ${p.name} from this form`}>Update</button>
            <button type="button" onClick=${() => setRenaming(p.id)} aria-label=${`Rename preset ${p.name}`}>Rename</button>
            <button type="button" onClick=${() => removePreset(p.id)} aria-label=${`Delete preset ${p.name}`}>Delete</button>
          </li>`)}
        </ul>
        <div class="inline">
          <label for="cs-preset">New preset name</label>
          <input id="cs-preset" name="preset_name" maxlength="100" />
          <button type="button" onClick=${saveAsPreset}>Save as preset</button>
        </div>
        ${saved && html`<p class="hint" role="status">${saved}</p>`}
      </fieldset>
      ${conflict
        ? html`<p class="error" role="alert">This conversation was changed in another tab or device.
            <button type="button" onClick=${() => { onClose(); reloadOpen(); }}>Reload</button></p>`
        : html`<${ErrorText} error=${error} />`}
      <div class="dialog-bar">
        <button type="button" onClick=${onClose}>Cancel</button>
        <button type="submit" class="primary">Save</button>
      </div>
    </form>
  <//>`;
}
