// The message box: Enter sends, Shift+Enter is a new line, and Enter while an input method
// is composing (Japanese, Chinese, ...) does nothing but finish the composition.
import { html, useEffect, useRef, useState } from "../../vendor/preact.js";
import { answerHead, open, send, stop } from "../chat.js";
import { models } from "../state.js";
import { ModelPicker } from "./ModelPicker.js";

export function Composer() {
  const [text, setText] = useState("");
  const box = useRef(null);
  const busy = answerHead.value?.status === "streaming"; // not per delta: answerHead
  const here = open.value?.conversation.id ?? null;
  const streaming = busy && answerHead.value.conversationId === here;
  const elsewhere = busy && !streaming;
  const canSend = text.trim() !== "" && !busy && models.value.length > 0;

  // A new chat, or a page where nothing has focus yet, starts in the message box; not on
  // touch screens, where focus would pop the keyboard over the page.
  useEffect(() => {
    const idle = !document.activeElement || document.activeElement === document.body;
    if ((idle || here === null) && matchMedia("(pointer: fine)").matches) {
      box.current?.focus({ preventScroll: true });
    }
  }, [here]);

  function submit(event) {
    event?.preventDefault();
    if (!canSend) return;
    const message = text;
    setText("");
    send(message);
    box.current?.focus();
  }

  function keydown(event) {
    if (event.key !== "Enter" || event.shiftKey) return;
    if (event.isComposing || event.keyCode === 229) return;
    event.preventDefault();
    submit();
  }

  return html`<form class="composer" onSubmit=${submit}>
    <textarea ref=${box} aria-label="Message" rows="2" placeholder="Message Parley"
      value=${text} onInput=${(e) => setText(e.currentTarget.value)} onKeyDown=${keydown}></textarea>
    ${elsewhere && html`<p class="hint" role="status">An answer is still being written in another
      conversation: Send waits for it (or stop it there).</p>`}
    <div class="composer-bar">
      <${ModelPicker} />
      ${streaming
        ? html`<button type="button" class="stop" onClick=${stop}>Stop</button>`
        : html`<button type="submit" class="primary" disabled=${!canSend}>Send</button>`}
    </div>
  </form>`;
}
