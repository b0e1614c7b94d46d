/**
 * ConnectionStatus: one indicator for every live stream on the page (the board's and the
 * open task's). It shows the worst of their states — refused (4401/4403: no retries), then
 * offline, then reconnecting, then connecting, then connected — and offers "Retry now"
 * while offline (not after a refusal: trying again would be refused the same way).
 *
 * The element carries `data-state` (for styles and tests) and is a polite live region, so a
 * change is announced without stealing focus.
 * @module connection-status
 */

import { setAttr, setText } from './dom.js';
import { SocketState } from './live-socket.js';

/** @typedef {import('./live-socket.js').SocketStateName} SocketStateName */

/**
 * How bad each state is (the indicator shows the worst).
 * @type {Record<SocketStateName, number>}
 */
const RANK = {
  [SocketState.DENIED]: 5,
  [SocketState.OFFLINE]: 4,
  [SocketState.RECONNECTING]: 3,
  [SocketState.CONNECTING]: 2,
  [SocketState.CONNECTED]: 1,
  [SocketState.CLOSED]: 0,
};

/** @type {Record<SocketStateName, string>} */
const LABELS = {
  [SocketState.DENIED]: 'Refused by the server',
  [SocketState.OFFLINE]: 'Offline — retrying',
  [SocketState.RECONNECTING]: 'Reconnecting…',
  [SocketState.CONNECTING]: 'Connecting…',
  [SocketState.CONNECTED]: 'Live',
  [SocketState.CLOSED]: 'Not connected',
};

export class ConnectionStatus {
  /**
   * @param {HTMLElement} element has a `.connection-label` child
   * @param {HTMLButtonElement} retryButton
   */
  constructor(element, retryButton) {
    this.element = element;
    this.label = element.querySelector('.connection-label') || element;
    this.retryButton = retryButton;
    /** @type {Map<string, import('./live-socket.js').LiveSocket>} */
    this.sockets = new Map();
    /** Every state shown, in order (kept short; useful when debugging a flaky network). */
    /** @type {SocketStateName[]} */
    this.history = [];
    retryButton.addEventListener('click', () => {
      for (const socket of this.sockets.values()) socket.retryNow();
    });
    this.render();
  }

  /**
   * Follow a socket under a name ("board", "task").
   * @param {string} name
   * @param {import('./live-socket.js').LiveSocket} socket
   */
  track(name, socket) {
    this.sockets.set(name, socket);
    this.render();
  }

  /**
   * Stop following a socket.
   * @param {string} name
   */
  untrack(name) {
    this.sockets.delete(name);
    this.render();
  }

  /** Recompute and show the combined state; call whenever a tracked socket changes. */
  render() {
    /** @type {SocketStateName} */
    let state = SocketState.CLOSED;
    const parts = [];
    for (const [name, socket] of this.sockets) {
      if (RANK[socket.state] > RANK[state]) state = socket.state;
      parts.push(`${name}: ${socket.state}`);
    }
    if (this.element.dataset.state !== state) {
      this.history.push(state);
      if (this.history.length > 50) this.history.shift();
    }
    setAttr(this.element, 'data-state', state);
    setAttr(this.element, 'data-streams', parts.join('; '));
    setText(this.label, LABELS[state]);
    this.retryButton.hidden = state !== SocketState.OFFLINE;
  }
}
