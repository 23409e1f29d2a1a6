// The UI library: Preact (components, hooks) with htm, whose tagged templates stand in for JSX so that no build
// step is needed. htm builds elements through Preact's `h`: interpolated values are props or text nodes, never
// parsed as HTML.
import { h } from "../../vendor/preact/preact.mjs";
import htm from "../../vendor/htm/htm.mjs";

export { Fragment, createContext, createRef, render } from "../../vendor/preact/preact.mjs";
export {
  useCallback, useContext, useEffect, useId, useLayoutEffect, useMemo, useReducer, useRef, useState,
} from "../../vendor/preact/hooks.mjs";
export const html = htm.bind(h);
