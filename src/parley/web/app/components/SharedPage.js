// A shared conversation, read-only and without signing in.
import { html, useEffect, useState } from "../../vendor/preact.js";
import { shared } from "../api/conversations.js";
import { ErrorText } from "./ErrorText.js";
import { Message } from "./Message.js";

export function SharedPage({ token }) {
  const [snapshot, setSnapshot] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    shared(token).then(setSnapshot, setError);
  }, [token]);
  if (error) {
    const gone = error.status === 404;
    return html`<main class="shared">
      <h1>${gone ? "This link no longer works" : "The conversation could not be loaded"}</h1>
      ${gone ? html`<p>It was revoked, it expired, or it never existed.</p>` : html`<${ErrorText} error=${error} />`}
    </main>`;
  }
  if (!snapshot) return html`<p class="boot" role="status">Loading…</p>`;
  return html`<main class="shared">
    <h1>${snapshot.title}</h1>
    <p class="hint">Shared by ${snapshot.shared_by || "a Parley user"}</p>
    <div class="messages">
      ${snapshot.messages.map((m, i) => html`<${Message} key=${i} message=${m} readOnly=${true} />`)}
    </div>
  </main>`;
}
