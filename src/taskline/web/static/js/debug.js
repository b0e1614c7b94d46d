/**
 * Hooks for tests and benchmarks, reachable as `window.__taskline`. Nothing in the app
 * depends on them; with no hook set they cost one property read per frame.
 * @module debug
 */

/**
 * @typedef {object} DebugHooks
 * @property {((events: Array<Record<string, any>>) => void)|null} onCommit called after each
 *   frame's DOM update of the detail panel with the live events it showed
 * @property {Record<string, object>|null} app the app's parts (board, detail, status), for inspection
 */

/** @type {DebugHooks} */
export const debug = {
  /**
   * Called after each frame's DOM update of the detail panel with the live events it showed.
   * @type {((events: Array<Record<string, any>>) => void)|null}
   */
  onCommit: null,
  /** The app's parts (board, detail, status), for inspection. */
  app: null,
};

/** @type {Window & {__taskline?: DebugHooks}} */ (window).__taskline = debug;
