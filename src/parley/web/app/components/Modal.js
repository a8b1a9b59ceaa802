// A native <dialog> opened as a modal: focus is trapped and Escape closes it, by the browser.
import { html, useLayoutEffect, useRef } from "../../vendor/preact.js";

export function Modal({ label, open, onClose, children, wide = false }) {
  const dialog = useRef(null);
  // Opened before the next key press, not after the next frame, so what is typed right
  // after the shortcut lands in the dialog's field instead of being lost.
  useLayoutEffect(() => {
    const element = dialog.current;
    if (open && !element.open) element.showModal();
    if (!open && element.open) element.close();
  }, [open]);
  return html`<dialog ref=${dialog} class=${`modal${wide ? " wide" : ""}`} aria-label=${label} onClose=${onClose}>
    ${open && children}
  </dialog>`;
}
