// The admin console's shell: its own navigation in the sidebar's place, the pages the
// viewer's role may use, and "Not allowed" for the rest. Global admins manage everything;
// a team's owners and admins manage that team (keys, members, its cache namespace).
import { html, useEffect, useState } from "../../vendor/preact.js";
import { ErrorText } from "../components/ErrorText.js";
import { navigate } from "../router.js";
import { user } from "../state.js";
import * as admin from "./api.js";
import { AuditPage } from "./AuditPage.js";
import { CachePage } from "./CachePage.js";
import { DeploymentsPage } from "./DeploymentsPage.js";
import { KeysPage } from "./KeysPage.js";
import { ModelsPage } from "./ModelsPage.js";
import { OverviewPage } from "./OverviewPage.js";
import { TeamsPage } from "./TeamsPage.js";
import { UsagePage } from "./UsagePage.js";
import { UsersPage } from "./UsersPage.js";

// The console's stylesheet, added once, when the console first opens.
const sheet = Object.assign(document.createElement("link"), {
  rel: "stylesheet",
  href: new URL("./manage.css", import.meta.url).href,
});
document.head.append(sheet);

const PAGES = [
  { id: "overview", label: "Overview", global: false },
  { id: "keys", label: "Keys", global: false },
  { id: "teams", label: "Teams", global: false },
  { id: "users", label: "Users", global: true },
  { id: "cache", label: "Cache", global: false },
  { id: "models", label: "Models", global: true },
  { id: "deployments", label: "Deployments", global: true },
  { id: "usage", label: "Usage", global: false },
  { id: "audit", label: "Audit", global: false },
];

function Page({ page, teams, global, onTeamsChanged }) {
  switch (page.id) {
    case "keys": return html`<${KeysPage} teams=${teams} global=${global} />`;
    case "teams": return html`<${TeamsPage} teams=${teams} global=${global} onTeamsChanged=${onTeamsChanged} />`;
    case "users": return html`<${UsersPage} />`;
    case "overview": return html`<${OverviewPage} teams=${teams} global=${global} />`;
    case "usage": return html`<${UsagePage} teams=${teams} global=${global} />`;
    case "audit": return html`<${AuditPage} teams=${teams} global=${global} />`;
    case "cache": return html`<${CachePage} teams=${teams} global=${global} />`;
    case "models": return html`<${ModelsPage} />`;
    default: return html`<${DeploymentsPage} />`;
  }
}

function Refused({ children }) {
  return html`<h1>Not allowed</h1>${children}<p><a href="/">Back to the chat</a></p>`;
}

export function Console({ section }) {
  const global = Boolean(user.value?.is_admin);
  const [teams, setTeams] = useState(null);
  const [error, setError] = useState(null);
  const reloadTeams = () => admin.listTeams().then((found) => setTeams(found.data), setError);
  useEffect(() => { reloadTeams(); }, []);
  useEffect(() => { if (!section) navigate("/manage/overview", { replace: true }); }, [section]);

  const pages = PAGES.filter((p) => global || !p.global);
  const page = PAGES.find((p) => p.id === section);
  const mayUse = page && pages.includes(page);
  useEffect(() => {
    document.title = `${page?.label ?? "Console"} · Console · Parley`;
    return () => { document.title = "Parley"; };
  }, [page]);

  let body;
  if (error?.status === 403) {
    body = html`<${Refused}><p>${error.message}.${error.message.includes("MFA") ? "" : " Sign in again if your role changed."}</p></${Refused}>`;
  } else if (error) {
    body = html`<${ErrorText} error=${error} />`;
  } else if (section && !page) {
    body = html`<h1>No such page</h1><p>The console has no page called “${section}”.</p>`;
  } else if (page && !mayUse) {
    body = html`<${Refused}><p>Only a global admin may use ${page.label}.</p></${Refused}>`;
  } else if (teams === null || !page) {
    body = html`<p class="boot" role="status">Loading…</p>`;
  } else {
    body = html`<${Page} page=${page} teams=${teams} global=${global} onTeamsChanged=${reloadTeams} />`;
  }
  return html`<nav class="sidebar console-nav" id="sidebar" aria-label="Console">
      <p class="console-scope">${global ? "Console · all of Parley" : "Console · your teams"}</p>
      <ul>${pages.map((p) => html`<li key=${p.id}>
        <a href=${`/manage/${p.id}`} aria-current=${p.id === section ? "page" : undefined}>${p.label}</a>
      </li>`)}</ul>
      <p class="back"><a href="/">Back to the chat</a></p>
    </nav>
    <main class="settings console" id="main">${body}</main>`;
}
