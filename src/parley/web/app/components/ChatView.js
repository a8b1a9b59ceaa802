// The open conversation (or a new one) and the composer under it.
import { html, useEffect, useRef } from "../../vendor/preact.js";
import { answer, focusMessage, loadEarlier, loadError, loading, open, openConversation } from "../chat.js";
import { Composer } from "./Composer.js";
import { ErrorText } from "./ErrorText.js";
import { Message } from "./Message.js";

export function ChatView({ id }) {
  useEffect(() => { openConversation(id); }, [id]);
  const end = useRef(null);
  const current = open.value;
  const live = answer.value;
  const messages = current && current.conversation.id === id ? current.messages : [];
  const target = focusMessage.value;
  useEffect(() => {
    if (target) return; // a search hit is being brought into view instead
    end.current?.scrollIntoView({ block: "end" });
  }, [messages.length, live?.content, target]);
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
    <h1 class="visually-hidden">${current?.conversation.title || "New chat"}</h1>
    <div class="messages">
      ${current?.conversation.next_before && html`<button type="button" class="earlier" onClick=${loadEarlier}>Load earlier messages</button>`}
      ${messages.length === 0 && !live && html`<p class="welcome">Ask anything.</p>`}
      ${messages.map((m, i) => html`<${Message} key=${m.id ?? `pending-${i}`} message=${m} />`)}
      ${live && (live.status === "streaming" || live.error) && html`<${Message}
        message=${{ role: "assistant", content: live.content, status: live.status, error: live.error }}
        streaming=${live.status === "streaming"} />`}
      <div ref=${end}></div>
    </div>
    <p class="visually-hidden" aria-live="polite">${done ? "Answer complete." : ""}</p>
    <${ErrorText} error=${loadError.value} />
    <${Composer} />
  </main>`;
}
