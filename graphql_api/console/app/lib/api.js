// GraphQL over HTTP (queries and mutations). Errors arrive with the API's codes (API.md, "Errors"); an
// UNAUTHENTICATED answer ends the session (the sign-in page says why).
import { expired, signOut, token } from "./session.js";

export const GRAPHQL_URL = new URL("../graphql", document.baseURI).href;

export class ApiError extends Error {
  constructor(errors) {
    super(errors.map((error) => error.message).join("; "));
    this.errors = errors;
    this.extensions = errors[0]?.extensions ?? {};
    this.code = this.extensions.code ?? "INTERNAL_SERVER_ERROR";
  }
}

// Server time minus local time in ms: from the Date header of each answer (1 s resolution), and exactly from the
// serverTime of each WebSocket connection_ack. SLA countdowns run on the server's clock even when this machine's
// clock is off.
let clockOffset = 0;
export const serverNow = () => Date.now() + clockOffset;
export const setServerTime = (serverMs) => {
  clockOffset = serverMs - Date.now();
};

// `timeoutMs`: give up on an answer that does not come (reads only: a mutation may still be applied after it).
export async function gql(query, variables = {}, { timeoutMs } = {}) {
  let response;
  try {
    response = await fetch(GRAPHQL_URL, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json", authorization: `Bearer ${token() ?? ""}` },
      body: JSON.stringify({ query, variables }),
      cache: "no-store",
      credentials: "omit",
      signal: timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined,
    });
  } catch {
    throw new ApiError([{ message: "The service cannot be reached", extensions: { code: "NETWORK_ERROR" } }]);
  }
  const date = Date.parse(response.headers.get("date") ?? "");
  if (!Number.isNaN(date)) {
    // The server's clock read somewhere in [date, date + 1 s): correct the estimate only when it is outside.
    const estimate = serverNow();
    if (estimate < date) clockOffset = date - Date.now();
    else if (estimate >= date + 1000) clockOffset = date + 999 - Date.now();
  }
  let body;
  try {
    body = await response.json();
  } catch {
    const code = response.status >= 500 ? "SERVICE_UNAVAILABLE" : "BAD_RESPONSE";
    throw new ApiError([{ message: `The service answered HTTP ${response.status}`, extensions: { code } }]);
  }
  if (body.errors?.length) {
    const error = new ApiError(body.errors);
    if (error.code === "UNAUTHENTICATED") signOut(expired() ? "expired" : "rejected", error.message);
    throw error;
  }
  return body.data;
}

const MAX_BACKOFF_MS = 5000;
const START_TIMEOUT_MS = 10000;
const SESSION_ERRORS = new Set(["UNAUTHENTICATED", "FORBIDDEN"]);

// Exponential backoff with jitter, capped: the live socket's reconnects and the start-up reads alike.
export const backoffMs = (retries) => Math.min(MAX_BACKOFF_MS, 250 * 2 ** retries) * (0.5 + Math.random() / 2);
export const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A read the console cannot start without (who is signed in, where the events start): a page must not stay stuck
// because one read failed or hung while the service restarted, so each try is bounded by START_TIMEOUT_MS and a
// failed one is asked again with backoff, `onRetry(error)` first. Undefined once `current()` turns false (signed out,
// started again); a session error (UNAUTHENTICATED, FORBIDDEN) is thrown.
export async function readUntilAnswered(query, variables, { current, onRetry }) {
  for (let attempt = 0; current(); attempt += 1) {
    try {
      const data = await gql(query, variables, { timeoutMs: START_TIMEOUT_MS });
      return current() ? data : undefined;
    } catch (error) {
      if (!current()) return undefined;
      if (SESSION_ERRORS.has(error.code)) throw error;
      onRetry?.(error);
      await pause(backoffMs(attempt));
    }
  }
  return undefined;
}
