// The chat app's door to the admin console: who may see it, the header's link, and the
// /manage view, whose modules and stylesheet load only when it is opened (import()), so
// the chat page's JavaScript does not grow with the console.
import { html, useEffect, useState } from "../vendor/preact.js";

const MANAGING = new Set(["owner", "admin"]);

/** Whether the console is for this user: a global admin, or an owner/admin of a team.
 * The API decides for real (403); this only hides what would be refused. */
export function mayManage(user) {
  return Boolean(user && (user.is_admin || (user.teams || []).some((t) => MANAGING.has(t.role))));
}

/** The way in: in the header on wide screens, in the sidebar's drawer on narrow ones
 * (app.css shows one or the other, so a phone's header stays on one line). */
export function ConsoleLink({ user, inSidebar = false }) {
  if (!mayManage(user)) return null;
  return html`<a class=${inSidebar ? "console-link" : "settings-link console-link"} href="/manage">Console</a>`;
}

let loading = null;

function stylesheet(href) {
  return new Promise((resolve) => {
    const link = Object.assign(document.createElement("link"), { rel: "stylesheet", href });
    link.onload = link.onerror = resolve;  // unstyled beats never shown
    document.head.append(link);
  });
}

function load() {
  loading ??= Promise.all([
    import("./manage/Console.js"),
    stylesheet(new URL("./manage/manage.css", import.meta.url).href),
  ]).then(([module]) => module, (error) => { loading = null; throw error; });
  return loading;
}

export function NotAllowed() {
  return html`<main class="settings" id="main">
    <h1>Not allowed</h1>
    <p>The console is for Parley's admins and for the owners and admins of a team. Your account is neither.</p>
    <p><a href="/">Back to the chat</a></p>
  </main>`;
}

/** The /manage view: "Not allowed" for members, else the console once its code is in. */
export function ManageView({ user, section }) {
  const [module, setModule] = useState(null);
  const [failed, setFailed] = useState(null);
  const allowed = mayManage(user);
  useEffect(() => {
    if (allowed) load().then(setModule, setFailed);
  }, [allowed]);
  if (!allowed) return html`<${NotAllowed} />`;
  if (failed) return html`<main class="settings"><p class="error" role="alert">The console could not be loaded. Reload the page.</p></main>`;
  if (!module) return html`<main class="settings"><p class="boot" role="status">Loading…</p></main>`;
  return html`<${module.Console} section=${section} />`;
}
