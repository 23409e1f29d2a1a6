// A value that components follow: `store.set` re-renders every component that read it with `useStore`.
import { useEffect, useReducer } from "./ui.js";

export function createStore(initial) {
  let value = initial;
  const listeners = new Set();
  return {
    get: () => value,
    set(next) {
      value = typeof next === "function" ? next(value) : next;
      for (const listener of [...listeners]) listener(value);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

export function useStore(store) {
  const [, rerender] = useReducer((n) => n + 1, 0);
  useEffect(() => store.subscribe(rerender), [store]);
  return store.get();
}
