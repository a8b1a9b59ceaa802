// An answer rendered as Markdown, with highlighted code (loaded on first use) and an
// exact-copy button per code block.
import { html, useEffect, useLayoutEffect, useMemo, useRef } from "../../vendor/preact.js";
import { blockRenderer, toHtml } from "../markdown.js";

let highlighter = null;
/** highlight.js and its two themes, loaded the first time an answer has a code block. */
function highlight() {
  if (!highlighter) {
    const vendor = new URL("../../vendor/", import.meta.url);
    for (const [theme, media] of [["light", "(prefers-color-scheme: light)"], ["dark", "(prefers-color-scheme: dark)"]]) {
      const link = document.createElement("link");
      link.rel = "stylesheet";
      link.href = new URL(`highlight-${theme}.css`, vendor).href;
      link.media = media;
      document.head.append(link);
    }
    highlighter = import("../../vendor/highlight.js").then((module) => module.default);
  }
  return highlighter;
}

let katex = null;
function loadKatex() {
  katex ??= import("../../vendor/katex.js").then((module) => module.default);
  return katex;
}

/** Draw the math placeholders (markdown.js) as MathML: no stylesheet, no web font. */
function drawMath(root, streaming) {
  const pending = [...root.querySelectorAll(".math:not([data-drawn])")]
    .filter((el) => !(streaming && el.closest("[data-open]")));
  if (pending.length === 0) return;
  loadKatex().then((tex) => {
    for (const el of pending) {
      if (el.dataset.drawn) continue;
      el.dataset.drawn = "1";
      tex.render(el.dataset.tex, el, {
        output: "mathml", displayMode: "display" in el.dataset, throwOnError: false, trust: false,
      });
    }
  });
}

function decorate(root, streaming) {
  drawMath(root, streaming);
  for (const pre of root.querySelectorAll("pre")) {
    if (pre.dataset.decorated) continue;
    const code = pre.querySelector("code");
    if (!code) continue;
    const isOpen = streaming && pre.closest("[data-open]");
    if (isOpen) continue; // a code fence still being written: decorate once it is finished
    pre.dataset.decorated = "1";
    const source = code.textContent.replace(/\n$/, ""); // the fence's text, as written
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-code";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy code");
    button.addEventListener("click", async () => {
      await navigator.clipboard.writeText(source);
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy"; }, 1500);
    });
    pre.append(button);
    highlight().then((hljs) => {
      const language = [...code.classList].find((c) => c.startsWith("language-"))?.slice(9);
      if (language && !hljs.getLanguage(language)) return;
      hljs.highlightElement(code);
    });
  }
}

// A streamed answer's blocks go in groups of this many: a full group is one element that
// is never touched again, so each frame diffs the open group only, not every block of a
// long answer; and a full group out of view is skipped by layout and paint
// (`content-visibility: auto` in app.css).
const GROUP = 32;

/** Decorate the blocks finished since the last call (a streamed answer), oldest first. */
function decorateNew(root, blocks, state) {
  if (state.first !== blocks[0]) { state.first = blocks[0]; state.count = 0; } // started over
  while (state.count < blocks.length && !blocks[state.count].open) {
    const group = root.children[Math.floor(state.count / GROUP)];
    const element = group?.children[state.count % GROUP];
    if (!element) break;
    decorate(element, false);
    state.count += 1;
  }
}

/** The elements of a streamed answer's blocks, in groups; each finished one made once. */
function grouped(blocks, made) {
  const element = (block, i) => {
    let made1 = made.get(block);
    if (!made1) {
      made1 = html`<div key=${i} class="block" data-open=${block.open ? "" : undefined}
        dangerouslySetInnerHTML=${{ __html: block.html }} />`;
      if (!block.open) made.set(block, made1);
    }
    return made1;
  };
  const groups = [];
  for (let start = 0; start < blocks.length; start += GROUP) {
    const part = blocks.slice(start, start + GROUP);
    const last = part.at(-1);
    const full = part.length === GROUP && !last.open;
    let group = full ? made.get(last)?.group : null;
    if (!group) {
      group = html`<div key=${start} class="blocks" data-full=${full ? "" : undefined}>${part.map((b, i) => element(b, start + i))}</div>`;
      if (full) made.get(last).group = group;
    }
    groups.push(group);
  }
  return groups;
}

export function Markdown({ text, streaming = false }) {
  const render = useMemo(() => blockRenderer(), []);
  const streamed = useRef(false);
  if (streaming) streamed.current = true;
  const root = useRef(null);
  const made = useRef(new WeakMap()); // finished block -> its element, made once
  const decorated = useRef({ first: null, count: 0 });
  const whole = useMemo(() => (streamed.current ? null : toHtml(text || "")), [text, streamed.current]);
  useEffect(() => { if (root.current && !streamed.current) decorate(root.current, false); });
  // Before the frame is drawn, and only the blocks just finished: never the whole answer.
  const blocks = whole === null ? render(text || "", { final: !streaming }) : null;
  useLayoutEffect(() => {
    if (root.current && blocks) decorateNew(root.current, blocks, decorated.current);
  });
  // A finished answer is rendered whole, once. One that streamed here keeps the blocks it
  // made meanwhile: at the answer's end only its open last block is parsed again.
  if (whole !== null) {
    return html`<div class="markdown" ref=${root}>
      <div class="block" dangerouslySetInnerHTML=${{ __html: whole }} />
    </div>`;
  }
  return html`<div class="markdown" ref=${root}>${grouped(blocks, made.current)}</div>`;
}
