// A value that components follow: `store.set` re-renders every component that read it with `useStore`.
import { useLayoutEffect, useReducer, useRef } from "./ui.js";

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

// Subscribed while the render is committed, not after the paint (useEffect): a value set in between was missed for
// good, and the top bar said "Offline" over a connected console. The value read at the render is compared too.
export function useStore(store) {
  const [, rerender] = useReducer((n) => n + 1, 0);
  const value = store.get();
  const rendered = useRef(value);
  rendered.current = value;
  useLayoutEffect(() => {
    const unsubscribe = store.subscribe(rerender);
    if (store.get() !== rendered.current) rerender();
    return unsubscribe;
  }, [store]);
  return value;
}
