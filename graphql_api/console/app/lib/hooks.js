// Data hooks of the pages: a query over HTTP, a live subscription, and a clock that ticks once a second.
import { gql, serverNow } from "./api.js";
import { connection, subscribe } from "./live.js";
import { useStore } from "./store.js";
import { useCallback, useEffect, useRef, useState } from "./ui.js";

// {data, error, loading, refetch}; runs again when `key` (a string of the inputs) changes; not at all with `skip`.
export function useQuery(query, variables, key = JSON.stringify(variables), { skip = false } = {}) {
  const [state, setState] = useState({ data: null, error: null, loading: !skip });
  const latest = useRef(0);
  const refetch = useCallback(async () => {
    if (skip) return null;
    const ticket = ++latest.current;
    setState((s) => ({ ...s, loading: true }));
    try {
      const data = await gql(query, variables);
      if (ticket === latest.current) setState({ data, error: null, loading: false });
      return data;
    } catch (error) {
      if (ticket === latest.current) setState((s) => ({ data: s.data, error, loading: false }));
      return null;
    }
  }, [query, key, skip]);
  useEffect(() => {
    refetch();
  }, [refetch]);
  return { ...state, refetch };
}

// {data, error}: the latest result of a subscription, renewed when `key` changes or the console reconnects
// (graphql-ws sends it again itself; a new session starts it again here).
export function useSubscription(query, variables, key = JSON.stringify(variables)) {
  const [state, setState] = useState({ data: null, error: null, receivedAt: null });
  const { status } = useStore(connection);
  const running = status !== "stopped" && status !== "starting"; // a socket exists to subscribe on
  useEffect(() => {
    if (!running) return undefined;
    setState((s) => ({ ...s, error: null }));
    return subscribe(query, variables, {
      next: (data) => setState({ data, error: null, receivedAt: Date.now() }),
      error: (errors) => setState((s) => ({ ...s, error: errors })),
    });
  }, [query, key, running]);
  return state;
}

// One timer per period for every component that follows the clock.
const tickers = new Map(); // period ms → Set of setters

// The server's time now, updated every `period` ms (1 s for SLA countdowns, longer for "5m ago").
export function useNow(period = 1000) {
  const [now, setNow] = useState(serverNow());
  useEffect(() => {
    if (!tickers.has(period)) {
      const setters = new Set();
      tickers.set(period, setters);
      setters.timer = setInterval(() => setters.forEach((tick) => tick(serverNow())), period);
    }
    const setters = tickers.get(period);
    setters.add(setNow);
    return () => {
      setters.delete(setNow);
      if (!setters.size) {
        clearInterval(setters.timer);
        tickers.delete(period);
      }
    };
  }, [period]);
  return now;
}

// Run `callback` at most once per `wait` ms while `trigger` fires (live events → one refetch).
export function useThrottled(callback, wait = 300) {
  const timer = useRef(null);
  const saved = useRef(callback);
  saved.current = callback;
  useEffect(() => () => clearTimeout(timer.current), []);
  return useCallback(() => {
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      saved.current();
    }, wait);
  }, [wait]);
}
