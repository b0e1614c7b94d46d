/**
 * Hooks for tests and benchmarks, reachable as `window.__taskline`. Nothing in the app
 * depends on them; with no hook set they cost one property read per frame.
 * @module debug
 */

export const debug = {
  /**
   * Called after each frame's DOM update of the detail panel with the live events it showed.
   * @type {((events: Array<Record<string, any>>) => void)|null}
   */
  onCommit: null,
  /** The app's parts (board, detail, status), for inspection. */
  app: null,
};

window.__taskline = debug;
