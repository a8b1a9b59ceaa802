// Cache: drop cached answers by namespace (a team's, a key's, a user's, or shared) or by
// model group, or both. A team's admins drop only their team's namespace.
import { html, useState } from "../../vendor/preact.js";
import { ErrorText } from "../components/ErrorText.js";
import { models } from "../state.js";
import * as admin from "./api.js";
import { textOf } from "./format.js";
import { Input, Select } from "./widgets.js";

export function CachePage({ teams, global }) {
  const [error, setError] = useState(null);
  const [done, setDone] = useState(null);
  const groups = [["", "Every model group"], ...models.value.map((m) => [m, m])];

  async function submit(event) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const namespace = textOf(form, "namespace");
    const model = textOf(form, "model");
    setError(null);
    setDone(null);
    try {
      const { dropped } = await admin.invalidateCache({ namespace, model });
      const what = [namespace && `namespace ${namespace}`, model && `model group ${model}`].filter(Boolean).join(" and ");
      setDone(`Dropped ${dropped} cached ${dropped === 1 ? "answer" : "answers"} (${what || "everything"}).`);
    } catch (caught) {
      setError(caught);
    }
  }

  return html`<h1>Cache</h1>
    <p>Cached answers are kept per namespace: <code>shared</code>, or one team's, key's or user's
      (see the <code>x-parley-cache</code> header in the docs). Dropping a namespace drops its sub-namespaces too.</p>
    <form class="console-form narrow" onSubmit=${submit}>
      ${global
        ? html`<${Input} label="Namespace" name="namespace" placeholder="team.<id>, key.<id>, shared.docs"
            hint="Empty: every namespace (then pick a model group)." maxlength="80" />`
        : html`<${Select} label="Namespace" name="namespace"
            options=${teams.map((t) => [`team.${t.id}`, `Team ${t.name}`])} value=${teams[0] ? `team.${teams[0].id}` : ""} />`}
      <${Select} label="Model group" name="model" options=${groups} value="" />
      <${ErrorText} error=${error} />
      <div class="dialog-bar start">
        <button type="submit" class="danger">Invalidate</button>
        <span role="status">${done ?? ""}</span>
      </div>
    </form>`;
}
