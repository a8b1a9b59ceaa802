// Model output as Markdown: marked renders, DOMPurify sanitises, always in that order, so raw
// HTML in an answer (<img onerror>, javascript: links) is inert.
//
// Streaming renders the tail: an answer is split into top-level blocks; a finished block's
// HTML is made once and kept, and only the open last block is parsed again as text arrives.
import { Marked, DOMPurify } from "../vendor/markdown.js";

const escapeHtml = (text) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// Math: $$...$$ and \[...\] as display, $...$ and \(...\) inline. The TeX is kept as text in
// a placeholder (data-tex); components/Markdown.js has KaTeX draw it once KaTeX has loaded.
const placeholder = (tex, display) =>
  `<${display ? "div" : "span"} class="math" data-tex="${escapeHtml(tex)}"${display ? ' data-display=""' : ""}>${escapeHtml(tex)}</${display ? "div" : "span"}>`;
const math = {
  extensions: [
    {
      name: "mathBlock",
      level: "block",
      start: (src) => src.match(/\$\$|\\\[/)?.index,
      tokenizer(src) {
        const m = /^(?:\$\$([\s\S]+?)\$\$|\\\[([\s\S]+?)\\\])[ \t]*(?:\n|$)/.exec(src);
        if (m) return { type: "mathBlock", raw: m[0], text: (m[1] ?? m[2]).trim() };
        return undefined;
      },
      renderer: (token) => placeholder(token.text, true),
    },
    {
      name: "mathInline",
      level: "inline",
      start: (src) => src.match(/\$|\\\(/)?.index,
      tokenizer(src) {
        const m = /^(?:\$(?![\s$])([^$\n]+?)(?<!\s)\$(?![\d$])|\\\(([\s\S]+?)\\\))/.exec(src);
        if (m) return { type: "mathInline", raw: m[0], text: (m[1] ?? m[2]).trim() };
        return undefined;
      },
      renderer: (token) => placeholder(token.text, false),
    },
  ],
};

const marked = new Marked({ gfm: true, breaks: false }, math);

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

// Inline style would break the pages' CSP anyway; forms and media have no place in an answer.
const PURIFY = {
  FORBID_ATTR: ["style"],
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe", "video", "audio"],
};

// marked's HTML is parsed into an element of an inert document (no browsing context: its
// scripts never run, its images never load, its handlers never fire), sanitised there in
// place, and read back. DOMPurify given a string does the same, but builds a new document
// per call, which costs more than sanitising a streamed answer's open block does.
const inert = document.implementation.createHTMLDocument("");
const holder = inert.createElement("div");
const IN_PLACE = { ...PURIFY, IN_PLACE: true };

function sanitized(html) {
  holder.innerHTML = html;
  DOMPurify.sanitize(holder, IN_PLACE);
  const clean = holder.innerHTML;
  holder.textContent = "";
  return clean;
}

export function toHtml(markdown) {
  return sanitized(marked.parse(markdown, { async: false }));
}

/** Blocks the lexer already made (their inline tokens included), without lexing again. */
const fromTokens = (tokens) => sanitized(marked.parser(tokens));

/**
 * A renderer for one streaming message. `render(text)` lexes only the text after the blocks
 * it has already finished, and returns the blocks ({html, open}) to show. A block is
 * finished once a later block has begun (blank lines alone do not end a list or a quote:
 * an indented line after them may still continue it): its HTML is made once and kept.
 * The open last block is parsed again on the next call. `render(text, {final: true})`, at
 * the answer's end, finishes every block, so only the open tail is parsed once more.
 */
export function blockRenderer() {
  let done = []; // [{html}] finished blocks, in order
  let doneLength = 0; // how much of the text they cover
  let covered = "";
  let last = null; // the previous call's text, mode and answer
  return function render(text, { final = false } = {}) {
    if (last && last.text === text && last.final === final) return last.blocks;
    if (!text.startsWith(covered)) { done = []; doneLength = 0; covered = ""; }
    const tail = text.slice(doneLength);
    const tokens = marked.lexer(tail);
    let finished = tokens.length;
    if (!final) {
      while (finished > 0 && tokens[finished - 1].type === "space") finished -= 1;
      finished = Math.max(finished - 1, 0); // the last block with content stays open
    }
    let offset = 0;
    let i = 0;
    for (; i < finished; i += 1) {
      const { raw, type } = tokens[i];
      if (!tail.startsWith(raw, offset)) break; // the lexer changed the text: keep it open
      if (type !== "space" && type !== "def") done.push({ html: fromTokens([tokens[i]]) });
      offset += raw.length;
    }
    doneLength += offset;
    covered = text.slice(0, doneLength);
    const rest = tail.slice(offset);
    const blocks = [...done];
    if (rest.trim()) blocks.push({ html: fromTokens(tokens.slice(i)), open: !final });
    last = { text, final, blocks };
    return blocks;
  };
}
