// /api/conversations and /api/models: the chat's data, one function per call.
import { call, json } from "./http.js";
import { events } from "./sse.js";

const base = "/api/conversations";
const id = (value) => encodeURIComponent(value);

export function list(cursor = null, { archived = false, tag = null, limit = 50 } = {}) {
  const query = new URLSearchParams({ limit: String(limit), archived: String(archived) });
  if (cursor) query.set("cursor", cursor);
  if (tag) query.set("tag", tag);
  return json("GET", `${base}?${query}`);
}
export function get(conversationId, { before = null } = {}) {
  const query = before ? `?before=${encodeURIComponent(before)}` : "";
  return json("GET", `${base}/${id(conversationId)}${query}`);
}

/** Hybrid search over the user's conversations; `filters` as the API names them. */
export function search(q, filters = {}) {
  const query = new URLSearchParams({ q, limit: "30" });
  for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
  return json("GET", `/api/search?${query}`);
}
export const create = (fields) => json("POST", base, { body: fields });
export const update = (conversationId, fields) =>
  json("PATCH", `${base}/${id(conversationId)}`, { body: fields });
export const remove = (conversationId) => json("DELETE", `${base}/${id(conversationId)}`);
export const stop = (conversationId, messageId) =>
  json("POST", `${base}/${id(conversationId)}/messages/${id(messageId)}/stop`);
export const models = () => json("GET", "/api/models");

/** Send a user message; yields the answer's events (start, delta, error, done). */
export function send(conversationId, content, { model, parentId, signal } = {}) {
  const body = { content };
  if (model) body.model = model;
  if (parentId) body.parent_id = parentId;
  return answered(`${base}/${id(conversationId)}/messages`, body, signal);
}

async function* answered(path, body, signal) {
  const response = await call("POST", path, { body, signal });
  yield* events(response);
}

export function regenerate(conversationId, messageId, { model, signal } = {}) {
  const path = `${base}/${id(conversationId)}/messages/${id(messageId)}/regenerate`;
  return answered(path, model ? { model } : {}, signal);
}

export function edit(conversationId, messageId, content, { model, signal } = {}) {
  const path = `${base}/${id(conversationId)}/messages/${id(messageId)}/edit`;
  return answered(path, model ? { content, model } : { content }, signal);
}

export const selectVersion = (conversationId, messageId) =>
  json("POST", `${base}/${id(conversationId)}/branch`, { body: { message_id: messageId } });
export const fork = (conversationId, messageId) =>
  json("POST", `${base}/${id(conversationId)}/fork`, { body: { message_id: messageId } });

/** Follow an answer from its start (after a reload, or from another tab). */
export async function* follow(conversationId, messageId, { signal } = {}) {
  const response = await call(
    "GET", `${base}/${id(conversationId)}/messages/${id(messageId)}/stream`, { signal },
  );
  yield* events(response);
}

/** A shared conversation's snapshot (no sign-in). */
export const shared = (token) => json("GET", `/api/shared/${id(token)}`, { noRefresh: true });
