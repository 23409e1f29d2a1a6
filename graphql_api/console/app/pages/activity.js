// The events of this session as they arrive (the app's patchEvents stream), newest first; events the console
// caught up on after a reconnect are marked.
import { Priority, Status } from "../components/badges.js";
import { at, time, words } from "../lib/format.js";
import { feed } from "../lib/live.js";
import { Link } from "../lib/router.js";
import { useStore } from "../lib/store.js";
import { html } from "../lib/ui.js";

export function ActivityPage() {
  const events = useStore(feed);
  return html`<section class="page activity">
    <header class="page-head"><h1 tabindex="-1">Activity</h1><p class="muted">Every change since you opened the console, newest first.</p></header>
    ${events.length === 0
      ? html`<p class="muted">No events yet.</p>`
      : html`<ol class="feed" aria-label="Events">
          ${events.map((event) => html`<li key=${event.seq} class=${event.missed ? "missed" : ""}>
            <time datetime=${event.at} title=${at(event.at)}>${time(event.at)}</time>
            <span class=${`kind kind-${event.kind.toLowerCase()}`}>${words(event.kind)}</span>
            <${Link} to=${`patches/${encodeURIComponent(event.patch.id)}`}>${event.patch.patchId}<//>
            <span class="pkg">${event.patch.packageName}</span>
            <${Priority} value=${event.patch.priority} /> <${Status} value=${event.patch.status} />
            <span class="actor">by ${event.actor}</span>
            ${event.missed ? html`<span class="flag" title="Happened while the console was disconnected; replayed on reconnect">caught up</span>` : null}
          </li>`)}
        </ol>`}
  </section>`;
}
