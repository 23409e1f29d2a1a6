// A small router over the History API: the app's pages live under /console/ (the <base> of index.html), and the
// service answers the same HTML for every sub-path, so a reload or a shared link opens the same page.
import { html } from "./ui.js";
import { createStore } from "./store.js";

const BASE = new URL(document.baseURI).pathname; // "/console/" (or a proxy's prefix + "/console/")

const current = () => ({ path: location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : "", query: new URLSearchParams(location.search) });
export const route = createStore(current());
addEventListener("popstate", () => route.set(current()));

export const href = (to) => BASE + to.replace(/^\//, "");

export function navigate(to, { replace = false } = {}) {
  history[replace ? "replaceState" : "pushState"](null, "", href(to));
  route.set(current());
}

// Replace the query string of the current page (filters, paging) without a new history entry per keystroke.
export function setQuery(values) {
  const query = new URLSearchParams(location.search);
  for (const [key, value] of Object.entries(values)) {
    if (value === null || value === undefined || value === "" || (Array.isArray(value) && !value.length)) query.delete(key);
    else query.set(key, Array.isArray(value) ? value.join(",") : String(value));
  }
  const search = query.toString();
  history.replaceState(null, "", location.pathname + (search ? `?${search}` : ""));
  route.set(current());
}

// routes: [[pattern, component]], patterns like "patches/:id"; the first match wins.
export function match(routes, path) {
  const parts = path.split("/").filter(Boolean);
  for (const [pattern, component] of routes) {
    const wanted = pattern.split("/").filter(Boolean);
    if (wanted.length !== parts.length) continue;
    const params = {};
    if (wanted.every((piece, i) => (piece.startsWith(":") ? ((params[piece.slice(1)] = decodeURIComponent(parts[i])), true) : piece === parts[i]))) {
      return { component, params };
    }
  }
  return null;
}

export function Link({ to, children, ...props }) {
  const onClick = (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(to);
  };
  return html`<a href=${href(to)} onClick=${onClick} ...${props}>${children}</a>`;
}
