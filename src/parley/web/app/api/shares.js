// Share links, exports and imports of conversations.
import { call, json } from "./http.js";

const base = (conversationId) => `/api/conversations/${encodeURIComponent(conversationId)}`;
export const list = (conversationId) => json("GET", `${base(conversationId)}/shares`);
export const create = (conversationId) => json("POST", `${base(conversationId)}/shares`, { body: {} });
export const revoke = (conversationId, shareId) =>
  json("DELETE", `${base(conversationId)}/shares/${encodeURIComponent(shareId)}`);

/** The export as a Blob: `format` is "json" or "markdown". */
export async function exported(conversationId, format) {
  const response = await call("GET", `${base(conversationId)}/export?format=${format}`);
  return response.blob();
}

/** Import a Parley export or ChatGPT's conversations.json (already parsed). */
export const importFile = (data) => json("POST", "/api/conversations/import", { body: data });
