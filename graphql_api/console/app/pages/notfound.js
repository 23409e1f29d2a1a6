import { Link } from "../lib/router.js";
import { html } from "../lib/ui.js";

export const NotFoundPage = () => html`<section class="page"><h1 tabindex="-1">Not found</h1>
  <p>There is no console page here. <${Link} to="">Go to the queue<//>.</p></section>`;
