// The app's entry: restore the session, then show the view the path names.
import { html, render, useEffect, useState } from "../vendor/preact.js";
import { logout, restore } from "./api/auth.js";
import { startLive } from "./api/live.js";
import { loadModels, loadSidebar, onRemoteEvent, onRemoteGeneration, resync } from "./chat.js";
import { ChatView } from "./components/ChatView.js";
import { SearchDialog } from "./components/SearchDialog.js";
import { Sidebar } from "./components/Sidebar.js";
import { VerifyNotice } from "./components/VerifyNotice.js";
import { ConsoleLink, ManageView } from "./console.js";
import { lazy } from "./lazy.js";
import { navigate, route } from "./router.js";
import { notice, path, sidebarOpen, user } from "./state.js";

// Loaded when first shown (lazy.js). The search dialog stays in: what is typed right after
// Ctrl+K must land in its field, with no module to wait for.
const booting = { fallback: html`<p class="boot" role="status">Loading…</p>` };
const ForgotPasswordPage = lazy(() => import("./components/ForgotPasswordPage.js"), "ForgotPasswordPage", booting);
const LoginPage = lazy(() => import("./components/LoginPage.js"), "LoginPage", booting);
const RegisterPage = lazy(() => import("./components/RegisterPage.js"), "RegisterPage", booting);
const ResetPasswordPage = lazy(() => import("./components/ResetPasswordPage.js"), "ResetPasswordPage", booting);
const SettingsPage = lazy(() => import("./components/SettingsPage.js"), "SettingsPage");
const SharedPage = lazy(() => import("./components/SharedPage.js"), "SharedPage", booting);
const VerifyEmailPage = lazy(() => import("./components/VerifyEmailPage.js"), "VerifyEmailPage", booting);

const PUBLIC = new Set(["login", "register", "shared", "forgot", "reset", "verify"]);

function Header({ onSearch }) {
  return html`<header class="top">
    <button type="button" class="menu" aria-expanded=${sidebarOpen.value ? "true" : "false"}
      aria-controls="sidebar" onClick=${() => { sidebarOpen.value = !sidebarOpen.value; }}>Menu</button>
    <a class="brand" href="/">Parley</a>
    <button type="button" onClick=${onSearch} aria-keyshortcuts="Control+K Meta+K">Search</button>
    <span class="who">${user.value?.name}</span>
    <a class="settings-link" href="/settings">Settings</a>
    <${ConsoleLink} user=${user.value} />
    <button type="button" onClick=${() => logout()}>Log out</button>
  </header>`;
}

function SignedIn({ where }) {
  const [searching, setSearching] = useState(false);
  useEffect(() => {
    const shortcut = (event) => {
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k") {
        event.preventDefault();
        setSearching(true);
      }
    };
    addEventListener("keydown", shortcut);
    return () => removeEventListener("keydown", shortcut);
  }, []);
  useEffect(() => {
    loadSidebar();
    loadModels();
    return startLive({ event: onRemoteEvent, generation: onRemoteGeneration, resync });
  }, []);
  useEffect(() => { sidebarOpen.value = false; }, [path.value]);
  return html`<div class="layout" data-sidebar=${sidebarOpen.value ? "open" : "closed"}>
    <${Header} onSearch=${() => setSearching(true)} />
    <${SearchDialog} open=${searching} onClose=${() => setSearching(false)} />
    ${notice.value && html`<p class="notice" role="status">${notice.value.text}</p>`}
    <${VerifyNotice} />
    ${where.view === "manage" ? html`<${ManageView} user=${user.value} section=${where.section} />` : html`
    <${Sidebar} />
    ${where.view === "settings" ? html`<${SettingsPage} />` : html`<${ChatView} id=${where.id ?? null} />`}`}
  </div>`;
}

function App() {
  const where = route(path.value);
  const who = user.value;
  useEffect(() => {
    if (who === null && !PUBLIC.has(where.view)) navigate("/login", { replace: true });
    if (who && (where.view === "login" || where.view === "register")) navigate("/", { replace: true });
  }, [who, where.view]);
  if (who === undefined) return html`<p class="boot" role="status">Loading…</p>`;
  if (where.view === "login") return html`<${LoginPage} />`;
  if (where.view === "register") return html`<${RegisterPage} />`;
  if (where.view === "shared") return html`<${SharedPage} token=${where.token} />`;
  if (where.view === "forgot") return html`<${ForgotPasswordPage} />`;
  if (where.view === "reset") return html`<${ResetPasswordPage} />`;
  if (where.view === "verify") return html`<${VerifyEmailPage} />`;
  if (!who) return null;
  return html`<${SignedIn} where=${where} />`;
}

render(html`<${App} />`, document.getElementById("app"));
restore();
