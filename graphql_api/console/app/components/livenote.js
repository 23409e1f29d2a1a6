// "Live · updated 12:03:04" next to a page title, or that the page is not live while the connection is down.
import { time } from "../lib/format.js";
import { connection } from "../lib/live.js";
import { useStore } from "../lib/store.js";
import { html } from "../lib/ui.js";

export function LiveNote({ receivedAt }) {
  const { status } = useStore(connection);
  if (!receivedAt) return html`<p class="live-note">Connecting…</p>`;
  return status === "connected"
    ? html`<p class="live-note"><span class="dot" aria-hidden="true"></span>Live · updated ${time(receivedAt)}</p>`
    : html`<p class="live-note paused"><span class="dot" aria-hidden="true"></span>Not live · last update ${time(receivedAt)}</p>`;
}
