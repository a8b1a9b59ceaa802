// /api/ws: the user's changes and live answers pushed from the server, for every tab.
//
// The socket authenticates with the in-memory access token (first message: browsers cannot
// set headers on a WebSocket), re-authenticates whenever the token changes, reconnects
// with backoff, and after any gap (reconnect, waking from sleep, coming back online) asks
// the app to resync from the REST API, since a socket only sees what happens while open.
import { effect } from "../../vendor/preact.js";
import { accessToken, notice } from "../state.js";
import { refresh } from "./auth.js";

const UNAUTHENTICATED = 4401;
let socket = null;
let handlers = null;
let retry = 0;
let timer = null;
let stopped = true;

function url() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/api/ws`;
}

function open() {
  clearTimeout(timer);
  if (stopped || !accessToken.value || socket) return;
  const ws = new WebSocket(url());
  socket = ws;
  let sentToken = null;
  ws.addEventListener("open", () => {
    sentToken = accessToken.value;
    ws.send(JSON.stringify({ type: "auth", token: sentToken }));
  });
  ws.addEventListener("message", ({ data }) => {
    const message = JSON.parse(data);
    if (message.type === "ready") {
      const gap = retry > 0 || handlers.everConnected;
      retry = 0;
      handlers.everConnected = true;
      if (notice.value?.kind === "offline") notice.value = null;
      if (gap) handlers.resync();
    } else if (message.type === "event") {
      handlers.event(message.event);
    } else if (message.type === "generation") {
      handlers.generation(message);
    }
  });
  ws.addEventListener("close", async (event) => {
    if (socket === ws) socket = null;
    if (stopped) return;
    if (event.code === UNAUTHENTICATED && !(await refresh(sentToken))) return; // signed out
    retry += 1;
    timer = setTimeout(open, Math.min(30_000, 500 * 2 ** Math.min(retry, 6)));
  });
  // A new token (refreshed here or in another tab) keeps the socket authenticated.
  ws.reauth = () => {
    if (ws.readyState === WebSocket.OPEN && accessToken.value && accessToken.value !== sentToken) {
      sentToken = accessToken.value;
      ws.send(JSON.stringify({ type: "auth", token: sentToken }));
    }
  };
}

/** No more deltas of this answer on the socket: this tab reads the answer's own stream,
 * so each delta would otherwise arrive twice (its start and end still come). */
export function quiet(messageId) {
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "quiet", message_id: messageId }));
}

/** Follow while signed in; `on` has event(event), generation(message) and resync(). */
export function startLive(on) {
  handlers = { ...on, everConnected: false };
  return effect(() => {
    if (!accessToken.value) { stopLive(); return; }
    stopped = false;
    if (socket) socket.reauth();
    else open();
  });
}

export function stopLive() {
  stopped = true;
  clearTimeout(timer);
  socket?.close(1000, "signed out");
  socket = null;
}

addEventListener("offline", () => {
  notice.value = { kind: "offline", text: "You are offline. Changes will sync when you reconnect." };
});
addEventListener("online", () => {
  if (notice.value?.kind === "offline") notice.value = null;
  if (!stopped) { socket?.close(); socket = null; retry = 1; open(); }
});
// After sleep the socket may be dead without knowing it: check when the tab comes back.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && !stopped && handlers) {
    if (!socket || socket.readyState !== WebSocket.OPEN) { retry = Math.max(retry, 1); open(); }
    else handlers.resync();
  }
});
