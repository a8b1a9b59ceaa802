// Client-side routing over the server's explicit UI paths (api/web.py lists them).
import { path } from "./state.js";

export function navigate(to, { replace = false } = {}) {
  if (to === location.pathname) return;
  if (replace) history.replaceState(null, "", to);
  else history.pushState(null, "", to);
  path.value = to;
}

/** Which view a path shows, and its parameter. */
export function route(current) {
  let m;
  if ((m = current.match(/^\/c\/([^/]+)$/))) return { view: "chat", id: decodeURIComponent(m[1]) };
  if ((m = current.match(/^\/s\/([^/]+)$/))) return { view: "shared", token: decodeURIComponent(m[1]) };
  if ((m = current.match(/^\/manage(?:\/([a-z-]+))?\/?$/))) return { view: "manage", section: m[1] ?? null };
  if (current === "/login") return { view: "login" };
  if (current === "/register") return { view: "register" };
  if (current === "/settings") return { view: "settings" };
  if (current === "/forgot-password") return { view: "forgot" };
  if (current === "/reset-password") return { view: "reset" };
  if (current === "/verify-email") return { view: "verify" };
  return { view: "chat", id: null };
}

addEventListener("popstate", () => { path.value = location.pathname; });

// Same-origin links navigate inside the app instead of reloading the page.
document.addEventListener("click", (event) => {
  const link = event.target.closest?.("a[href]");
  if (!link || link.target || link.hasAttribute("download")) return;
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href);
  // /api/ and /auth/ are the server's (single sign-on starts with a real navigation)
  if (url.origin !== location.origin || /^\/(api|auth)\//.test(url.pathname)) return;
  event.preventDefault();
  navigate(url.pathname);
});
