// Subscribe with the npm `graphql-ws` client (graphql-transport-ws) and print each event as a JSON line.
// Usage: node ws-subscribe.js <ws-url> <token> <count> <query>
// Prints {"ready": true} once the server acknowledged the connection, then one line per `next` payload,
// then exits 0 after <count> payloads; prints {"error": ...} and exits 1 on a refusal or an error.
"use strict";
const { createClient } = require("graphql-ws");
const WebSocket = require("ws");

const [url, token, count, query] = process.argv.slice(2);
let received = 0;
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
  retryAttempts: 0,
  lazy: false,
  on: { connected: () => console.log(JSON.stringify({ ready: true })) },
});
const fail = (error) => {
  const detail = error && error.code ? { code: error.code, reason: error.reason } : String(error);
  console.log(JSON.stringify({ error: detail }));
  process.exit(1);
};
const timer = setTimeout(() => fail("timeout"), 30000);
client.subscribe(
  { query },
  {
    next: (payload) => {
      console.log(JSON.stringify(payload));
      received += 1;
      if (received >= Number(count)) {
        clearTimeout(timer);
        client.dispose();
        process.exit(0);
      }
    },
    error: fail,
    complete: () => {},
  },
);
