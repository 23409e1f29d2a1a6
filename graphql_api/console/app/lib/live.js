// The one WebSocket of the console (graphql-transport-ws, the npm graphql-ws client): every subscription of the
// pages rides on it, and the app's `patchEvents` stream feeds the activity feed and the live pages.
//
// - Closed by the server (1001 on a rolling update, 4408 slow consumer), by the network, found dead (no pong within
//   PONG_TIMEOUT_MS of a ping) or not connected within CONNECT_TIMEOUT_MS: the client reconnects by itself with
//   backoff, and `connection` says so (the banner reads it). Its subscriptions are sent again on the new socket;
//   each sends its current page at once.
// - patchEvents resumes where it stopped: it starts from `latestEventCursor` and its variables always hold the
//   cursor of the last event received. graphql-ws re-sends a subscription's own payload object when it
//   reconnects (client.js `subscribe`), so the new socket asks for patchEvents(after: <last cursor>) and the
//   server replays exactly the events missed in between.
// - 4401 (token expired or refused) and 4403 end the session: the sign-in page asks for a new token.
// - A renewed token (single sign-on, lib/sso.js): `renewConnection` closes the socket with RENEW_CLOSE_CODE and the
//   client connects again at once with the new token, before the old one expires (the server would close the
//   socket with 4401 then). Subscriptions resume as on any reconnect; no banner, no "Reconnected" notice.
import { createClient } from "../../vendor/graphql-ws/client.js";
import { GRAPHQL_URL, backoffMs, pause, readUntilAnswered, serverNow, setServerTime } from "./api.js";
import { signOut, token } from "./session.js";
import { createStore } from "./store.js";

const SESSION_CLOSE_CODES = new Set([4401, 4403]);
const RENEW_CLOSE_CODE = 4205; // ours (4000-4999 are the application's): graphql-ws retries it
const PONG_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 10000;
const KEEP_ALIVE_MS = 10000;
const FEED_LENGTH = 200;

// status: "starting" (the first cursor read failed: retrying, no socket yet) | "connecting" | "connected" |
// "reconnecting" | "stopped"; closed: {code, reason} of the last close
export const connection = createStore({ status: "stopped", attempt: 0, closed: null, since: Date.now() });
// The events of this session, newest first: {cursor, seq, kind, actor, at, patch, missed}
export const feed = createStore([]);
// The last reconnection after a close: {at, missed: events replayed that happened while the console was away}
export const lastReconnect = createStore(null);

const EVENTS = `subscription ConsoleEvents($after: String) {
  patchEvents(after: $after) { cursor seq kind actor at patch { id patchId packageName priority status version } }
}`;

let client = null;
let eventsPayload = null;
let disposeEvents = null;
let reconnectedAt = null;
let socket = null;
let renewing = false;
let connectTimer = null;
let starts = 0; // bumped by stop(): a start still waiting for its first cursor gives up
const eventListeners = new Set();

export function onEvent(listener) {
  eventListeners.add(listener);
  return () => eventListeners.delete(listener);
}

export async function start() {
  stop();
  const generation = starts;
  const after = await firstCursor(generation);
  if (after === undefined) return; // stopped (signed out) meanwhile
  let pongTimer = null;
  connection.set({ status: "connecting", attempt: 0, closed: null, since: Date.now() });
  const started = createClient({
    url: GRAPHQL_URL.replace(/^http/, "ws"),
    connectionParams: () => ({ Authorization: `Bearer ${token()}` }),
    lazy: false,
    keepAlive: KEEP_ALIVE_MS,
    retryAttempts: Infinity,
    shouldRetry: (event) => !SESSION_CLOSE_CODES.has(event?.code),
    retryWait: (retries) => pause(renewing ? 0 : backoffMs(retries)),
    onNonLazyError: (error) => endSession(error),
    on: {
      connecting: (isRetry) => {
        // An attempt whose upgrade or acknowledgement never comes is given up and made again (graphql-ws waits for ever).
        clearTimeout(connectTimer);
        connectTimer = setTimeout(() => started.terminate(), CONNECT_TIMEOUT_MS);
        if (!renewing) connection.set((c) => ({ ...c, status: isRetry ? "reconnecting" : "connecting", attempt: isRetry ? c.attempt + 1 : 0 }));
      },
      opened: (opened) => {
        socket = opened;
      },
      connected: (_socket, payload, wasRetry) => {
        clearTimeout(connectTimer);
        if (Number.isFinite(payload?.serverTime)) setServerTime(payload.serverTime);
        if (renewing) {
          renewing = false;
        } else if (wasRetry) {
          // Events replayed on this connection happened before it was accepted (the server's own clock).
          reconnectedAt = Number.isFinite(payload?.serverTime) ? payload.serverTime : serverNow();
          lastReconnect.set({ at: Date.now(), missed: 0 });
        }
        connection.set({ status: "connected", attempt: 0, closed: null, since: Date.now() });
      },
      closed: (event) => {
        clearTimeout(pongTimer);
        clearTimeout(connectTimer);
        socket = null;
        if (client !== started || (renewing && event?.code === RENEW_CLOSE_CODE)) return;
        renewing = false;
        // The banner says why the connection was lost, not why the last retry failed.
        connection.set((c) => {
          const lost = c.status === "connected" || !c.closed;
          return { ...c, status: "reconnecting", closed: lost ? { code: event?.code, reason: event?.reason } : c.closed, since: lost ? Date.now() : c.since };
        });
      },
      ping: (received) => {
        if (!received) pongTimer = setTimeout(() => started.terminate(), PONG_TIMEOUT_MS);
      },
      pong: (received) => {
        if (received) clearTimeout(pongTimer);
      },
    },
  });
  client = started;
  eventsPayload = { query: EVENTS, variables: { after } };
  disposeEvents = client.subscribe(eventsPayload, {
    next: ({ data }) => data?.patchEvents && receive(data.patchEvents),
    error: endSession,
    complete: () => {},
  });
}

// The session's token was renewed: connect again with it (see the top of this file).
export function renewConnection() {
  if (!client || socket?.readyState !== WebSocket.OPEN) return; // a connection being made reads the new token anyway
  renewing = true;
  socket.close(RENEW_CLOSE_CODE, "token renewed");
}

// Where the events start: the latest cursor (read until the service answers); undefined once stop() was called.
async function firstCursor(generation) {
  const current = () => generation === starts;
  const onRetry = () => connection.set((c) => ({ ...c, status: "starting", attempt: c.attempt + 1 })); // the banner: "the service cannot be reached"
  const data = await readUntilAnswered("query ConsoleStart { latestEventCursor }", {}, { current, onRetry });
  return data === undefined ? undefined : data.latestEventCursor;
}

export function stop() {
  starts += 1;
  clearTimeout(connectTimer);
  disposeEvents?.();
  client?.dispose();
  client = disposeEvents = eventsPayload = null;
  feed.set([]);
  lastReconnect.set(null);
  reconnectedAt = null;
  socket = null;
  renewing = false;
  connection.set({ status: "stopped", attempt: 0, closed: null, since: Date.now() });
}

function receive(event) {
  eventsPayload.variables.after = event.cursor; // what a reconnect asks for (see the top of this file)
  const missed = reconnectedAt !== null && Date.parse(event.at) < reconnectedAt;
  if (missed) lastReconnect.set((last) => ({ ...last, missed: last.missed + 1 }));
  feed.set((events) => [{ ...event, missed }, ...events].slice(0, FEED_LENGTH));
  for (const listener of [...eventListeners]) listener(event);
}

function endSession(error) {
  const code = error?.code;
  if (SESSION_CLOSE_CODES.has(code)) {
    signOut(code === 4403 ? "forbidden" : "expired", error.reason || null);
  } else if (Array.isArray(error) && error.some((e) => e?.extensions?.code === "UNAUTHENTICATED")) {
    signOut("expired", error[0].message);
  }
}

// A live query: `next(data)` with each result. Returns the function that ends it.
export function subscribe(query, variables, { next, error }) {
  if (!client) return () => {};
  return client.subscribe({ query, variables }, {
    next: (result) => (result.errors?.length ? error?.(result.errors) : next(result.data)),
    error: (problem) => {
      endSession(problem);
      error?.(Array.isArray(problem) ? problem : [{ message: problem?.reason || "subscription failed" }]);
    },
    complete: () => {},
  });
}
