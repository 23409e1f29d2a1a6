// GraphiQL for this service (graphql_api/console/graphiql.html), every asset served by the service itself.
// Queries and mutations go over HTTP, subscriptions over a WebSocket (graphql-transport-ws); GraphiQL sends the
// header editor's headers with both (on the WebSocket as the connection_init payload, which the service reads).
// A reviewer-console session in this tab (sessionStorage) fills in its token; nothing is persisted beyond that.
(function () {
  "use strict";
  var TOKEN_KEY = "hitl.console.token";
  var url = location.origin + location.pathname;
  var token = sessionStorage.getItem(TOKEN_KEY);
  var headers = JSON.stringify({ Authorization: "Bearer " + (token || "") }, null, 2);
  var example = [
    "# GraphiQL for the HITL Patch Service.",
    "#",
    "# Every operation needs a credential: the Headers tab holds",
    '#   {"Authorization": "Bearer <token>"}',
    "# filled in when you are signed in to the reviewer console in this tab",
    "# (otherwise: hitl token --sub you --role viewer). Subscriptions use the",
    "# same header over a WebSocket.",
    "",
    "query Queue {",
    "  me { subject roles }",
    "  pendingPatches(first: 5) {",
    "    totalCount",
    "    edges { node { patchId packageName priority status slaStatus } }",
    "  }",
    "}",
    "",
    "subscription Events {",
    "  patchEvents { seq kind actor at patch { patchId status version } }",
    "}",
    "",
  ].join("\n");
  var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: url.replace(/^http/, "ws") });
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: example,
      headers: headers,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: "headers",
    })
  );
})();
