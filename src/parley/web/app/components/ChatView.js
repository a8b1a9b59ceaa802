// The open conversation (or a new one) and the composer under it.
import { html, useEffect, useLayoutEffect, useRef, useState } from "../../vendor/preact.js";
import { exported } from "../api/shares.js";
import { answer, answerHead, focusMessage, loadEarlier, loadError, loading, open, openConversation } from "../chat.js";
import { lazy } from "../lazy.js";
import { Composer } from "./Composer.js";
import { ErrorText } from "./ErrorText.js";
import { Message } from "./Message.js";

// The toolbar's dialogs load the first time they are opened (lazy.js).
const opened = (props) => props.isOpen;
const ConversationSettings = lazy(() => import("./ConversationSettings.js"), "ConversationSettings", { when: opened });
const ShareDialog = lazy(() => import("./ShareDialog.js"), "ShareDialog", { when: opened });

async function download(conversation, format) {
  const blob = await exported(conversation.id, format);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  const base = (conversation.title || "conversation").replace(/[^\w .-]+/g, "_").slice(0, 80);
  link.download = `${base}.${format === "markdown" ? "md" : "json"}`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function Toolbar({ conversation }) {
  const [dialog, setDialog] = useState(null);
  const [error, setError] = useState(null);
  const close = () => setDialog(null);
  const save = (format) => download(conversation, format).catch(setError);
  return html`<div class="toolbar">
    <h1 class="conversation-title">${conversation.title || "New conversation"}</h1>
    <button type="button" onClick=${() => setDialog("settings")}>Conversation settings</button>
    <button type="button" onClick=${() => setDialog("share")}>Share</button>
    <button type="button" onClick=${() => save("json")}>Export JSON</button>
    <button type="button" onClick=${() => save("markdown")}>Export Markdown</button>
    <${ErrorText} error=${error} />
    <${ConversationSettings} isOpen=${dialog === "settings"} onClose=${close} />
    <${ShareDialog} isOpen=${dialog === "share"} onClose=${close} />
  </div>`;
}

/** The answer being written, as a message. Read by its Message alone (the `live` prop):
 * a delta redraws that message, not the list, the toolbar or the composer. */
function liveMessage() {
  const live = answer.value;
  return live && { id: live.id, role: "assistant", content: live.content, status: live.status,
    error: live.error, pending: true };
}

/**
 * The messages as one keyed list, the answer being written last. A saved message's element
 * is made once per message object, so drawing the next piece of an answer redraws only the
 * answer (Preact skips an element it has seen before). The answer keeps its key (its id)
 * when the saved copy replaces it: the same Markdown instance goes on, with the blocks it
 * has rendered, instead of rendering a long answer again from the start.
 */
function useItems(messages, live, stickToEnd) {
  const made = useRef(new WeakMap());
  const items = messages.map((m, i) => {
    let item = made.current.get(m);
    if (!item) {
      item = html`<${Message} key=${m.id ?? `pending-${i}`} message=${m} />`;
      made.current.set(m, item);
    }
    return item;
  });
  if (!live) return items;
  const at = live.id ? messages.findIndex((m) => m.id === live.id) : -1;
  const streaming = live.status === "streaming";
  // Shown until its saved copy is (a failed answer is not saved: shown with its error).
  if (at !== -1 && !streaming && !live.error) return items;
  const item = html`<${Message} key=${live.id ?? "answer"} streaming=${streaming}
    live=${liveMessage} onDrawn=${stickToEnd} />`;
  if (at === -1) items.push(item);
  else items[at] = item;
  return items;
}

export function ChatView({ id }) {
  useEffect(() => { openConversation(id); }, [id]);
  const end = useRef(null);
  const current = open.value;
  const live = answerHead.value?.conversationId === id ? answerHead.value : null;
  const messages = current && current.conversation.id === id ? current.messages : [];
  const target = focusMessage.value;
  const aimed = useRef(target);
  aimed.current = target;
  // Before the frame is drawn (an effect would scroll after it, and cost a second frame).
  const stickToEnd = useRef(() => {
    if (aimed.current) return; // a search hit is being brought into view instead
    const box = end.current?.parentElement; // the scroller only, not the page around it
    if (box) box.scrollTop = box.scrollHeight;
  }).current;
  const items = useItems(messages, live, stickToEnd);
  useLayoutEffect(stickToEnd, [messages.length, target]);
  useEffect(() => {
    if (!target) return;
    const element = document.getElementById(`m-${target}`);
    if (!element) return;
    element.scrollIntoView({ block: "center" });
    element.focus({ preventScroll: true });
    focusMessage.value = null;
  }, [target, messages.length]);
  const done = live && live.status !== "streaming";
  return html`<main class="chat" aria-busy=${loading.value ? "true" : undefined}>
    ${current && current.conversation.id === id
      ? html`<${Toolbar} conversation=${current.conversation} />`
      : html`<h1 class="visually-hidden">New chat</h1>`}
    <div class="messages">
      ${current?.conversation.next_before && html`<button type="button" class="earlier" onClick=${loadEarlier}>Load earlier messages</button>`}
      ${messages.length === 0 && !live && html`<p class="welcome">Ask anything.</p>`}
      ${items}
      <div ref=${end}></div>
    </div>
    <p class="visually-hidden" aria-live="polite">${done ? "Answer complete." : ""}</p>
    <${ErrorText} error=${loadError.value} />
    <${Composer} />
  </main>`;
}
