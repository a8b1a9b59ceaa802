// The open conversation and its answer in progress: what the chat view shows, and the
// actions on it. Components call these; these call api/.
import { batch, signal } from "../vendor/preact.js";
import * as api from "./api/conversations.js";
import { navigate } from "./router.js";
import { conversations, models, nextCursor } from "./state.js";

/** {conversation, messages} of the open conversation, or null for a new chat. */
export const open = signal(null);
export const loading = signal(false);
export const loadError = signal(null);
/** The answer being streamed: {id, content, status, error}; null when none. */
export const answer = signal(null);
/** The model group the next message goes to. */
export const chosenModel = signal(null);

let streamAbort = null;

export async function loadSidebar() {
  const page = await api.list();
  batch(() => {
    conversations.value = page.data;
    nextCursor.value = page.next_cursor;
  });
}

export async function loadMore() {
  if (!nextCursor.value) return;
  const page = await api.list(nextCursor.value);
  batch(() => {
    conversations.value = [...conversations.value, ...page.data];
    nextCursor.value = page.next_cursor;
  });
}

export async function loadModels() {
  const { data } = await api.models();
  models.value = data.map((m) => m.id);
  if (!chosenModel.value || !models.value.includes(chosenModel.value)) {
    chosenModel.value = models.value[0] ?? null;
  }
}

export async function openConversation(id) {
  if (id === null) {
    batch(() => { open.value = null; loadError.value = null; });
    return;
  }
  if (open.value?.conversation.id === id) return;
  loading.value = true;
  try {
    const found = await api.get(id);
    batch(() => {
      open.value = { conversation: found, messages: found.messages };
      if (found.model) chosenModel.value = found.model;
      loadError.value = null;
    });
  } catch (error) {
    batch(() => { open.value = null; loadError.value = error; });
  } finally {
    loading.value = false;
  }
}

function upsertSidebar(conversation) {
  const rest = conversations.value.filter((c) => c.id !== conversation.id);
  conversations.value = [conversation, ...rest];
}

/** Send the text as the next message of the open conversation (made first for a new chat). */
export async function send(text) {
  const model = chosenModel.value;
  let current = open.value;
  if (!current) {
    const conversation = await api.create({ model });
    current = { conversation, messages: [] };
    open.value = current;
    upsertSidebar(conversation);
    navigate(`/c/${encodeURIComponent(conversation.id)}`, { replace: true });
  }
  const conversationId = current.conversation.id;
  const parentId = current.messages.at(-1)?.id ?? null;
  const pending = { id: null, role: "user", content: [{ type: "text", text }], pending: true };
  open.value = { ...current, messages: [...current.messages, pending] };
  answer.value = { id: null, content: "", status: "streaming", error: null };
  streamAbort = new AbortController();
  try {
    for await (const event of api.send(conversationId, [{ type: "text", text }], {
      model, parentId, signal: streamAbort.signal,
    })) {
      apply(event);
    }
  } catch (error) {
    if (error.name !== "AbortError") answer.value = { ...answer.value, status: "error", error };
  } finally {
    streamAbort = null;
    await settle(conversationId);
  }
}

function apply(event) {
  const now = answer.value;
  if (event.type === "start") {
    answer.value = { ...now, id: event.message_id };
  } else if (event.type === "delta") {
    answer.value = { ...now, content: now.content + event.content };
  } else if (event.type === "error") {
    answer.value = { ...now, error: event.error };
  } else if (event.type === "done") {
    answer.value = { ...now, status: event.status };
  }
}

/** After an answer: read the conversation back, so the view shows what was saved. */
async function settle(conversationId) {
  try {
    const found = await api.get(conversationId);
    batch(() => {
      if (open.value?.conversation.id === conversationId) {
        open.value = { conversation: found, messages: found.messages };
      }
      const failed = answer.value?.status === "error" ? answer.value : null;
      answer.value = failed;
      upsertSidebar(found);
    });
  } catch (error) {
    loadError.value = error;
  }
}

export async function stop() {
  const current = answer.value;
  const conversationId = open.value?.conversation.id;
  if (!current?.id || !conversationId) {
    streamAbort?.abort();
    return;
  }
  await api.stop(conversationId, current.id);
}
