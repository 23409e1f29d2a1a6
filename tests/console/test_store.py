"""The console's stores in the browser (graphql_api/console/app/lib/store.js): a component follows every value of
its store, including one set between its render and the paint. `useStore` used to subscribe after the paint, so a
value set in between was missed for good: the top bar said "Offline" and the queue "Connecting…" over a console
whose WebSocket was connected (two CI runs, one on a reload and one on a first sign-in)."""

from tests.support.browser import chromium

FOLLOW = """
const done = arguments[arguments.length - 1];
(async () => {
  const { createStore, useStore } = await import("/console/assets/app/lib/store.js");
  const { html, render } = await import("/console/assets/app/lib/ui.js");
  const store = createStore("rendered");
  const Shown = () => html`<span>${useStore(store)}</span>`;
  const root = document.createElement("div");
  document.body.append(root);
  render(html`<${Shown} />`, root);
  store.set("set before the paint");
  await new Promise((resolve) => setTimeout(resolve, 500));
  const first = root.textContent;
  store.set("set later");
  await new Promise((resolve) => setTimeout(resolve, 200));
  done([first, root.textContent]);
})().catch((error) => done(String(error)));
"""


def test_a_value_set_between_the_render_and_the_paint_is_shown(sqlite_console):
    with chromium() as driver:
        driver.get(f"{sqlite_console.base}/console/")
        assert driver.execute_async_script(FOLLOW) == ["set before the paint", "set later"]
