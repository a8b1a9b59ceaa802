// An answer rendered as Markdown, with highlighted code (loaded on first use) and an
// exact-copy button per code block.
import { html, useEffect, useMemo, useRef } from "../../vendor/preact.js";
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

export function Markdown({ text, streaming = false }) {
  const render = useMemo(() => blockRenderer(), []);
  const root = useRef(null);
  // A finished answer is rendered whole once; a streaming one block by block.
  const blocks = useMemo(
    () => (streaming ? null : [{ raw: text || "", html: toHtml(text || "") }]),
    [text, streaming],
  ) ?? render(text || "");
  useEffect(() => { if (root.current) decorate(root.current, streaming); });
  return html`<div class="markdown" ref=${root}>
    ${blocks.map((block, i) => html`<div
      key=${i}
      class="block"
      data-open=${block.open ? "" : undefined}
      dangerouslySetInnerHTML=${{ __html: block.html }}
    />`)}
  </div>`;
}
