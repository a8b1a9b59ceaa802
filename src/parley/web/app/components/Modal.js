// A native <dialog> opened as a modal: focus is trapped and Escape closes it, by the browser.
import { html, useEffect, useRef } from "../../vendor/preact.js";

export function Modal({ label, open, onClose, children, wide = false }) {
  const dialog = useRef(null);
  useEffect(() => {
    const element = dialog.current;
    if (open && !element.open) element.showModal();
    if (!open && element.open) element.close();
  }, [open]);
  return html`<dialog ref=${dialog} class=${`modal${wide ? " wide" : ""}`} aria-label=${label} onClose=${onClose}>
    ${open && children}
  </dialog>`;
}
