// Import a Parley export or ChatGPT's conversations.json from a file.
import { html, useRef, useState } from "../../vendor/preact.js";
import { importFile } from "../api/shares.js";
import { loadSidebar, openAt } from "../chat.js";

const MAX_BYTES = 32 * 1024 * 1024;

export function ImportButton() {
  const input = useRef(null);
  const [status, setStatus] = useState(null);

  async function chosen(event) {
    const file = event.currentTarget.files?.[0];
    event.currentTarget.value = "";
    if (!file) return;
    if (file.size > MAX_BYTES) {
      setStatus({ error: `That file is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${MAX_BYTES / 1048576} MB.` });
      return;
    }
    let data;
    try {
      data = JSON.parse(await file.text());
    } catch {
      setStatus({ error: "That file is not JSON: choose a Parley export or ChatGPT's conversations.json." });
      return;
    }
    setStatus({ busy: `Importing ${file.name}…` });
    try {
      const result = await importFile(data);
      const made = result.object === "list" ? result.data : [result];
      await loadSidebar(); // "Imported" is said once the list shows them
      setStatus({ done: `Imported ${made.length} conversation${made.length === 1 ? "" : "s"}.` });
      if (made.length === 1) await openAt(made[0].id, null);
    } catch (error) {
      const where = error.param ? ` (at ${error.param})` : "";
      const large = error.status === 413 ? " The file is larger than the server accepts." : "";
      setStatus({ error: `${error.message}${where}.${large}` });
    }
  }

  return html`<div class="import">
    <button type="button" onClick=${() => input.current.click()}>Import conversations</button>
    <input ref=${input} type="file" accept="application/json,.json" class="visually-hidden"
      tabindex="-1" aria-hidden="true" onChange=${chosen} />
    ${status?.busy && html`<p class="hint" role="status">${status.busy}</p>`}
    ${status?.done && html`<p class="hint" role="status">${status.done}</p>`}
    ${status?.error && html`<p class="error" role="alert">${status.error}</p>`}
  </div>`;
}
