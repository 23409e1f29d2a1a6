// Short confirmations and notices, announced to screen readers (role=status), gone after a few seconds.
import { createStore, useStore } from "../lib/store.js";
import { html } from "../lib/ui.js";

const toasts = createStore([]);
let next = 0;

export function toast(message, kind = "info", ms = 6000) {
  const id = ++next;
  toasts.set((list) => [...list, { id, message, kind }]);
  setTimeout(() => toasts.set((list) => list.filter((item) => item.id !== id)), ms);
}

export function Toasts() {
  const list = useStore(toasts);
  return html`<div class="toasts" role="status" aria-live="polite">
    ${list.map((item) => html`<div key=${item.id} class="toast toast-${item.kind}">${item.message}</div>`)}
  </div>`;
}
