// The way into the admin console. Its code loads only when opened (import() of
// manage/Console.js, which adds its own stylesheet), so the chat page does not grow.
import { html, useEffect, useState } from "../vendor/preact.js";

/** A global admin, or a team's owner/admin (the API decides for real: 403). */
export const mayManage = (u) => Boolean(u && (u.is_admin || u.teams?.some((t) => t.role === "owner" || t.role === "admin")));

/** In the header when wide, in the menu drawer when narrow (app.css shows one). */
export const ConsoleLink = ({ user, inSidebar }) =>
  mayManage(user) && html`<a class=${inSidebar ? "console-link" : "settings-link console-link"} href="/manage">Console</a>`;

const Failed = () => html`<main class="settings"><p class="error" role="alert">The console could not be loaded. Reload the page.</p></main>`;

export function ManageView({ user, section }) {
  const [Console, setConsole] = useState(null);
  const allowed = mayManage(user);
  useEffect(() => {
    if (allowed) import("./manage/Console.js").then((m) => setConsole(() => m.Console), () => setConsole(() => Failed));
  }, [allowed]);
  if (!allowed) {
    return html`<main class="settings"><h1>Not allowed</h1>
      <p>The console is for admins and for a team's owners and admins.</p><a href="/">Back to the chat</a></main>`;
  }
  return Console ? html`<${Console} section=${section} />` : html`<main class="settings"><p class="boot" role="status">Loading…</p></main>`;
}
