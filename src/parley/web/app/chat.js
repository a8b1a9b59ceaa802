// The open conversation and its answer in progress: what the chat view shows, and the
// actions on it. Components call these; these call api/.
import { batch, computed, signal } from "../vendor/preact.js";
import * as api from "./api/conversations.js";
import { quiet } from "./api/live.js";
import { navigate, route } from "./router.js";
import { conversations, models, nextCursor, path } from "./state.js";

/** {conversation, messages} of the open conversation, or null for a new chat. */
export const open = signal(null);
export const loading = signal(false);
export const loadError = signal(null);
/** The answer being streamed: {id, content, status, error}; null when none. */
export const answer = signal(null);
/** Whether an answer is being written: changes twice per answer, not once per delta. */
export const busy = computed(() => answer.value?.status === "streaming");
/** The answer without its text: {run, id, conversationId, status, error}, the same object
 * until one of those changes. What the view reads to place the answer, so a delta redraws
 * the answer alone (components/ChatView.js: LiveAnswer), not the list or the composer. */
const HEAD = ["run", "id", "conversationId", "status", "error"];
let head = null;
export const answerHead = computed(() => {
  const now = answer.value;
  if (!now) return (head = null);
  if (head && HEAD.every((key) => head[key] === now[key])) return head;
  head = Object.fromEntries(HEAD.map((key) => [key, now[key]]));
  return head;
});
/** The model group the next message goes to. */
export const chosenModel = signal(null);

let streamAbort = null;

/** Which list the sidebar shows: the active conversations or the archived ones. */
export const showArchived = signal(false);
/** A deletion the user can still undo: {conversation, timer}. */
export const pendingDelete = signal(null);
export const UNDO_MS = 6000;

/** Why saved answers failed, by message id, as this tab saw it happen (the server keeps
 * only that they did). */
export const failures = signal(new Map());

/** Answers a budget sent to a cheaper model, by message id: the model asked for (the
 * saved answer names only the model that wrote it). */
export const downgrades = signal(new Map());

/** The one tag the sidebar shows, or null for all. */
export const tagFilter = signal(null);

/** A page of the sidebar's list. With a tag, the server filters each page after reading
 * it, so pages can come back short or empty: read on until there is a screenful. */
async function sidebarPage(cursor) {
  const filters = { archived: showArchived.value, tag: tagFilter.value };
  let page = await api.list(cursor, filters);
  const data = [...page.data];
  for (let reads = 1; filters.tag && data.length < 20 && page.next_cursor && reads < 20; reads++) {
    page = await api.list(page.next_cursor, filters);
    data.push(...page.data);
  }
  return { data, next_cursor: page.next_cursor };
}

export async function loadSidebar() {
  const page = await sidebarPage(null);
  batch(() => {
    conversations.value = page.data.filter((c) => c.id !== pendingDelete.value?.conversation.id);
    nextCursor.value = page.next_cursor;
  });
}

export async function loadMore() {
  if (!nextCursor.value) return;
  const page = await sidebarPage(nextCursor.value);
  batch(() => {
    conversations.value = [...conversations.value, ...page.data];
    nextCursor.value = page.next_cursor;
  });
}

/** Change a conversation's title, tags, pin or archive flag; the sidebar shows the answer. */
export async function change(conversationId, fields) {
  const updated = await api.update(conversationId, fields);
  const moved = ("archived" in fields && updated.archived !== showArchived.value)
    || ("tags" in fields && tagFilter.value && !updated.tags.includes(tagFilter.value));
  conversations.value = moved
    ? conversations.value.filter((c) => c.id !== conversationId)
    : conversations.value.map((c) => (c.id === conversationId ? updated : c));
  if (open.value?.conversation.id === conversationId) {
    open.value = { ...open.value, conversation: { ...open.value.conversation, ...updated } };
  }
}

/** Hide a conversation now and delete it once the undo window has passed. */
export function removeLater(conversation) {
  commitDelete();
  conversations.value = conversations.value.filter((c) => c.id !== conversation.id);
  if (open.value?.conversation.id === conversation.id) navigate("/");
  const timer = setTimeout(commitDelete, UNDO_MS);
  pendingDelete.value = { conversation, timer };
}

export function undoDelete() {
  const pending = pendingDelete.value;
  if (!pending) return;
  clearTimeout(pending.timer);
  pendingDelete.value = null;
  loadSidebar();
}

function commitDelete() {
  const pending = pendingDelete.value;
  if (!pending) return;
  clearTimeout(pending.timer);
  pendingDelete.value = null;
  api.remove(pending.conversation.id).catch((error) => { loadError.value = error; loadSidebar(); });
}
addEventListener("pagehide", commitDelete); // leaving the page ends the undo window

export async function loadModels() {
  const { data } = await api.models();
  models.value = data.map((m) => m.id);
  if (!chosenModel.value || !models.value.includes(chosenModel.value)) {
    chosenModel.value = models.value[0] ?? null;
  }
}

let opening = null; // {id, promise}: a view and a search hit may ask for the same one

export function openConversation(id) {
  if (id === null) {
    batch(() => { open.value = null; loadError.value = null; });
    return Promise.resolve();
  }
  if (open.value?.conversation.id === id) return Promise.resolve();
  if (opening?.id === id) return opening.promise;
  const promise = load(id).finally(() => { if (opening?.promise === promise) opening = null; });
  opening = { id, promise };
  return promise;
}

async function load(id) {
  loading.value = true;
  let found;
  try {
    found = await api.get(id);
    batch(() => {
      open.value = { conversation: found, messages: found.messages };
      if (found.model) chosenModel.value = found.model;
      loadError.value = null;
    });
  } catch (error) {
    batch(() => { open.value = null; loadError.value = error; });
    return;
  } finally {
    loading.value = false;
  }
  const waiting = remembered(id);
  if (waiting && !found.messages.some((m) => m.id === waiting)) follow(id, waiting);
  else if (waiting) forget(id);
}

/** The page before the oldest one shown (a long conversation opens at its end). */
export async function loadEarlier() {
  const current = open.value;
  const before = current?.conversation.next_before;
  if (!before) return;
  const page = await api.get(current.conversation.id, { before });
  if (open.value?.conversation.id !== current.conversation.id) return;
  open.value = {
    conversation: { ...open.value.conversation, next_before: page.next_before },
    messages: [...page.messages, ...open.value.messages],
  };
}

/** The message to bring into view once it is shown (a search hit). */
export const focusMessage = signal(null);

/** Open a conversation on the branch holding `messageId`, paging back until it is shown. */
export async function openAt(conversationId, messageId) {
  if (messageId) await api.selectVersion(conversationId, messageId);
  open.value = null;
  navigate(`/c/${encodeURIComponent(conversationId)}`);
  await openConversation(conversationId);
  if (!messageId) return;
  for (let pages = 0; pages < 100; pages += 1) {
    if (!open.value || open.value.messages.some((m) => m.id === messageId)) break;
    if (!open.value.conversation.next_before) break;
    await loadEarlier();
  }
  focusMessage.value = messageId;
}

/**
 * Show an answer this tab did not start (after a reload, or begun in another tab) from
 * its first piece: the server replays it from the start, so nothing is doubled or missed.
 */
let joining = null;
const ended = new Set(); // answers this tab has shown to their end: later frames are late
export async function follow(conversationId, messageId, { fresh = true } = {}) {
  if (streamAbort || joining === messageId || ended.has(messageId)) return;
  if (open.value?.conversation.id !== conversationId) return;
  joining = messageId; // many frames may ask at once: one follow
  try {
    if (!fresh) await reload(conversationId); // another tab's question is saved: show it first
    const current = open.value;
    if (streamAbort || current?.conversation.id !== conversationId) return;
    await stream(current, current.messages.length, null, (signal) =>
      api.follow(conversationId, messageId, { signal }));
  } finally {
    joining = null;
  }
}

// --- what other tabs and devices did (api/live.js) ---------------------------------------

let sidebarTimer = null;
function refreshSidebarSoon() {
  clearTimeout(sidebarTimer);
  sidebarTimer = setTimeout(() => { loadSidebar().catch(() => {}); }, 150);
}

export function onRemoteEvent(event) {
  const id = event.conversation_id;
  if (event.type === "conversation.deleted") {
    conversations.value = conversations.value.filter((c) => c.id !== id);
    if (open.value?.conversation.id === id) navigate("/", { replace: true });
    return;
  }
  refreshSidebarSoon();
  const shown = open.value?.conversation;
  if (!shown || shown.id !== id || streamAbort) return;
  if (event.version > shown.version) reload(id).catch(() => {});
}

export function onRemoteGeneration(message) {
  if (message.frame?.type === "start" || message.frame?.type === "delta") {
    follow(message.conversation_id, message.message_id, { fresh: false });
  }
}

/** After a gap in the live feed: read back what is shown. */
export async function resync() {
  refreshSidebarSoon();
  const shown = open.value?.conversation;
  if (shown && !streamAbort) await reload(shown.id).catch(() => {});
}

function upsertSidebar(conversation) {
  const rest = conversations.value.filter((c) => c.id !== conversation.id);
  conversations.value = [conversation, ...rest];
}

/** Send the text as the next message of the open conversation (made first for a new chat). */
export async function send(text) {
  const model = chosenModel.value;
  // The address says which conversation the box belongs to ("/" is a new chat): a late
  // read-back of the previous one must never make a new chat's first message its reply.
  const routed = route(path.value).id;
  let current = routed !== null && open.value?.conversation.id === routed ? open.value : null;
  if (routed !== null && !current) return; // still loading that conversation: nothing to send to
  if (!current) {
    const conversation = await api.create({ model });
    current = { conversation, messages: [] };
    open.value = current;
    upsertSidebar(conversation);
    navigate(`/c/${encodeURIComponent(conversation.id)}`, { replace: true });
  }
  const content = [{ type: "text", text }];
  const parentId = current.messages.at(-1)?.id ?? null;
  await stream(current, current.messages.length, content, (signal) =>
    api.send(current.conversation.id, content, { model, parentId, signal }));
}

/** Another answer to the same question, from the model now picked. */
export async function regenerate(message) {
  const current = open.value;
  const keep = current.messages.findIndex((m) => m.id === message.id);
  await stream(current, keep, null, (signal) =>
    api.regenerate(current.conversation.id, message.id, { model: chosenModel.value, signal }));
}

/** A new version of one of the user's questions, answered anew. */
export async function edit(message, text) {
  const current = open.value;
  const keep = current.messages.findIndex((m) => m.id === message.id);
  const content = [{ type: "text", text }];
  await stream(current, keep, content, (signal) =>
    api.edit(current.conversation.id, message.id, content, { model: chosenModel.value, signal }));
}

/**
 * Show the first `keep` messages, then (for a question) the user's new message, then the
 * answer as it streams; read the conversation back once it ends.
 */
async function stream(current, keep, userContent, start) {
  const shown = current.messages.slice(0, Math.max(keep, 0));
  if (userContent) shown.push({ id: null, role: "user", content: userContent, pending: true });
  open.value = { ...current, messages: shown };
  // One answer at a time per tab; it belongs to its conversation, shown only there.
  // `run` tells this answer's updates from a later one's: the read-back after an answer
  // ends may land after the next answer began, and must not touch it.
  const run = (answerRuns += 1);
  answer.value = {
    run, id: null, conversationId: current.conversation.id, content: "", status: "streaming",
    error: null,
  };
  streamAbort = new AbortController();
  try {
    for await (const event of start(streamAbort.signal)) apply(event, current.conversation.id, run);
  } catch (error) {
    if (error.name !== "AbortError" && answer.value?.run === run) {
      answer.value = { ...answer.value, status: "error", error };
    }
  } finally {
    if (unshown.run === run) showDeltas();
    streamAbort = null;
    if (answer.value?.run === run && answer.value.id) ended.add(answer.value.id);
    await settle(current.conversation.id, run);
  }
}
let answerRuns = 0;

/** Switch a message to another of its versions (the branch last worked on under it). */
export async function showVersion(messageId) {
  const current = open.value;
  await api.selectVersion(current.conversation.id, messageId);
  await reload(current.conversation.id);
}

/** A new conversation holding this branch up to the message; opens it. */
export async function fork(messageId) {
  const copy = await api.fork(open.value.conversation.id, messageId);
  upsertSidebar(copy);
  navigate(`/c/${encodeURIComponent(copy.id)}`);
}

/**
 * Replace the conversation's settings, unless another change landed since `version` (the
 * one the form was filled from): then the server refuses (409) and nothing is overwritten.
 */
export async function saveSettings(settings, version) {
  const current = open.value.conversation;
  const updated = await api.update(current.id, { settings, expected_version: version });
  if (open.value?.conversation.id === current.id) {
    open.value = { ...open.value, conversation: { ...open.value.conversation, ...updated } };
  }
}

export async function reloadOpen() {
  const shown = open.value?.conversation;
  if (shown) await reload(shown.id);
}

async function reload(conversationId) {
  const found = await api.get(conversationId);
  batch(() => {
    if (open.value?.conversation.id === conversationId) {
      open.value = { conversation: found, messages: found.messages };
    }
    // An answer whose stream broke (Parley went away mid-answer) stays on screen as it
    // was until the conversation read back holds it: saved as lost, as far as it got,
    // the saved copy (with Retry) takes its place.
    const broken = answer.value;
    if (!streamAbort && broken?.conversationId === conversationId && broken.status === "error"
        && broken.id && found.messages.some((m) => m.id === broken.id)) {
      // This read-back may land before the one that follows the stream's end (a sync
      // notice raced it): the saved copy still shows why it failed.
      if (broken.error) keepFailure(broken.id, broken.error);
      answer.value = null;
    }
  });
  return found;
}

// The answer this browser is waiting for, per conversation, so a tab closed mid-answer can
// reattach to it when the conversation is opened again (the server keeps generating).
const inflightKey = (conversationId) => `parley.answering.${conversationId}`;
function remember(conversationId, messageId) {
  try { localStorage.setItem(inflightKey(conversationId), messageId); } catch { /* private mode */ }
}
function forget(conversationId) {
  try { localStorage.removeItem(inflightKey(conversationId)); } catch { /* private mode */ }
}
function remembered(conversationId) {
  try { return localStorage.getItem(inflightKey(conversationId)); } catch { return null; }
}

// Deltas arrive far faster than the screen is drawn (hundreds a second when the model is
// quick or the tab catches up after a stall): they are joined and shown at the next frame
// at least SHOW_EVERY_MS after the last, so a long answer costs a bounded number of
// renders (each lays out and paints the page), whatever the number of deltas. Ten a
// second still reads as a steady stream; at 50 ms, the redraws were a fifth of the main
// thread's time for bench.web's 100 KB answer (docs/benchmarks.md).
const SHOW_EVERY_MS = 100;
let unshown = { run: null, text: "" };
let frame = 0;
let shownAt = 0;
let wait = 0;
// Waits out the rest of the interval with a timer, then takes the next frame: a frame
// asked for only to look at the clock would still be drawn.
function scheduleShow() {
  if (frame || wait) return;
  const left = SHOW_EVERY_MS - (performance.now() - shownAt);
  if (left > 4) {
    wait = setTimeout(() => { wait = 0; scheduleShow(); }, left);
    return;
  }
  frame = requestAnimationFrame(() => {
    frame = 0;
    showDeltas();
  });
}
function showDeltas() {
  cancelAnimationFrame(frame);
  clearTimeout(wait);
  frame = 0;
  wait = 0;
  shownAt = performance.now();
  const { run, text } = unshown;
  unshown = { run: null, text: "" };
  if (text && answer.value?.run === run) {
    answer.value = { ...answer.value, content: answer.value.content + text };
  }
}

function apply(event, conversationId, run) {
  const now = answer.value;
  if (now?.run !== run) return;
  if (event.type === "delta") {
    if (unshown.run !== run) showDeltas();
    unshown = { run, text: unshown.text + event.content };
    scheduleShow();
    return;
  }
  showDeltas(); // what came before this event is shown first
  if (event.type === "start") {
    answer.value = { ...answer.value, id: event.message_id, model: event.model ?? answer.value.model };
    remember(conversationId, event.message_id);
    quiet(event.message_id);
  } else if (event.type === "model") {
    answer.value = { ...answer.value, model: event.model, downgradedFrom: event.downgraded_from };
  } else if (event.type === "error") {
    answer.value = { ...answer.value, error: { ...event.error, retryAfter: event.error.retry_after ?? null } };
  } else if (event.type === "done") {
    answer.value = { ...answer.value, status: event.status };
  }
}

/** A saved answer that failed is stored without its error: keep it to show with it. */
function keepFailure(messageId, error) {
  failures.value = new Map(failures.value).set(messageId, error);
}

/** After an answer: read the conversation back, so the view shows what was saved. */
async function settle(conversationId, run) {
  forget(conversationId);
  try {
    const found = await api.get(conversationId);
    batch(() => {
      // A newer answer already running owns the view: leave it alone.
      if (!streamAbort && open.value?.conversation.id === conversationId) {
        open.value = { conversation: found, messages: found.messages };
      }
      // A failed answer is saved as far as it got, but not its error: `failures` keeps that
      // for the saved message. One that was not saved stays on screen as it was.
      const failed = answer.value?.run === run ? answer.value : null;
      const saved = failed?.error && found.messages.some((m) => m.id === failed.id);
      if (saved) keepFailure(failed.id, failed.error);
      const done = answer.value?.run === run ? answer.value : null;
      if (done?.downgradedFrom && done.id) {
        downgrades.value = new Map(downgrades.value).set(done.id, done.downgradedFrom);
      }
      if (failed) answer.value = failed.error && !saved ? { ...failed, status: "error" } : null;
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
