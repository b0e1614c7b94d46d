/**
 * A WebSocket to Taskline that stays connected: reconnects with exponential backoff and
 * jitter, sends heartbeats, and — for a task stream — resumes from the last seq it saw, so
 * every task event is delivered exactly once and in order across drops and server restarts.
 *
 * Wire facts it relies on (README, "Live events"):
 * - the first frame is `connection_established` with `epoch` and the log's `last_seq`;
 * - `?since=N&epoch=E` replays events after N, then goes live, with no gap or duplicate;
 * - with `batch=1` every frame is a JSON array of envelopes;
 * - close codes: 4404 unknown task (stop), 4409 void cursor (start over without a cursor),
 *   1008 bad query (same), 4401 not signed in and 4403 forbidden (stop: trying again cannot
 *   help; the reason is in the close frame), anything else invites a resume;
 * - a client that sends nothing for 5 minutes is dropped, so it sends a heartbeat every 20 s.
 *
 * Lifecycle: `connecting` (never connected yet) → `connected` → `reconnecting` (retrying after
 * a drop) → `connected` …; `offline` after {@link OFFLINE_AFTER} failed attempts in a row or
 * while the browser says it is offline (retries go on); `closed` after `stop()` or 4404;
 * `denied` after 4401 or 4403 (no more retries until `start()`).
 * @module live-socket
 */

/** Connection states, as shown by the ConnectionStatus indicator. */
export const SocketState = Object.freeze({
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
  RECONNECTING: 'reconnecting',
  OFFLINE: 'offline',
  CLOSED: 'closed',
  DENIED: 'denied',
});

/** @typedef {typeof SocketState[keyof typeof SocketState]} SocketStateName one of {@link SocketState} */

/** Close codes the server uses (taskline.realtime.close_codes). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  BAD_QUERY: 1008,
  SLOW_CONSUMER: 4008,
  UNAUTHENTICATED: 4401,
  FORBIDDEN: 4403,
  UNKNOWN_TASK: 4404,
  STALE: 4408,
  VOID_CURSOR: 4409,
});

/** Failed attempts in a row after which the state reads `offline`. */
export const OFFLINE_AFTER = 5;
const HEARTBEAT_MS = 20_000;
const OPEN_TIMEOUT_MS = 10_000;
/** Silence (in server heartbeat intervals) after which a connection is presumed dead. */
const SILENCE_FACTOR = 3;

/**
 * Delay before the next attempt after `failures` failures in a row: exponential (base × 2^n,
 * capped) with "equal jitter" — half fixed, half random — so a restarted server is not hit
 * by every client at the same instant, yet nobody waits needlessly long.
 * @param {number} failures 1 for the first retry
 * @param {{baseMs?: number, capMs?: number, random?: () => number}} [options]
 * @returns {number} milliseconds
 */
export function backoffDelay(failures, { baseMs = 500, capMs = 15_000, random = Math.random } = {}) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, failures - 1));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * A fresh client id (kept across reconnects, so the server can hand over queued personal
 * messages).
 * @returns {string}
 */
export function newClientId() {
  const bytes = crypto.getRandomValues(new Uint8Array(10));
  return `client_${Array.from(bytes, (b) => (b % 36).toString(36)).join('')}`;
}

/**
 * @typedef {object} Envelope
 * @property {string} id
 * @property {number|null} seq
 * @property {string|null} task_id
 * @property {string} event_type
 * @property {Record<string, any>} data
 * @property {string} timestamp
 * @property {string|null} [actor] who made it: `person:ana`, `agent:agent_x`, `system:hub`, …
 */

/**
 * @typedef {object} LiveSocketOptions
 * @property {string} path e.g. `/ws/tasks/task_abc` or `/ws/board`
 * @property {boolean} [resume] keep a seq cursor and resume from it (task streams only)
 * @property {number} [heartbeatMs] how often to send `{"type": "heartbeat"}`
 * @property {(events: Envelope[]) => void} onEvents task events (each once, in seq order) and
 *   connection messages other than `connection_established` and `heartbeat`
 * @property {(info: Record<string, any>, reconnected: boolean) => void} [onEstablished]
 * @property {(state: SocketStateName) => void} [onState]
 * @property {() => void} [onReset] the cursor was void (4409): reload everything
 * @property {(reason: string) => void} [onGone] the task does not exist (4404)
 * @property {(after: number, seq: number) => void} [onGap] a seq jump inside the stream
 * @property {(code: number, reason: string) => void} [onDenied] the server refused the stream:
 *   4401 (not signed in) or 4403 (forbidden); the socket has stopped
 */

export class LiveSocket {
  /** @param {LiveSocketOptions} options */
  constructor(options) {
    this.options = options;
    this.path = options.path;
    this.resume = Boolean(options.resume);
    this.heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS;
    this.clientId = newClientId();
    /** Last seq delivered (task streams); `null` until the first `connection_established`. */
    this.since = null;
    /** The log epoch `since` belongs to. */
    this.epoch = null;
    /** @type {SocketStateName} */
    this.state = SocketState.CLOSED;
    this.failures = 0;
    this.everConnected = false;
    this.stopped = true;
    /** Events dropped because their seq was seen already (replay overlap). */
    this.duplicates = 0;
    /** @type {WebSocket|null} */
    this.ws = null;
    this.retryTimer = 0;
    this.openTimer = 0;
    this.heartbeatTimer = 0;
    this.lastHeard = 0;
    this.silenceMs = 60_000;
    this.handleOnline = () => {
      if (!this.stopped && this.state !== SocketState.CONNECTED) this.retryNow();
    };
    this.handleOffline = () => {
      if (!this.stopped && this.state !== SocketState.CONNECTED) this.setState(SocketState.OFFLINE);
    };
  }

  /** Open the connection (and keep it open until `stop()`). */
  start() {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.handleOnline);
    window.addEventListener('offline', this.handleOffline);
    this.connect();
  }

  /** Close for good; no more callbacks. */
  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.handleOnline);
    window.removeEventListener('offline', this.handleOffline);
    clearTimeout(this.retryTimer);
    this.clearConnectionTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = null;
      ws.close(CloseCode.NORMAL, 'viewer left');
    }
    this.setState(SocketState.CLOSED);
  }

  /** Try again now instead of waiting for the backoff timer (e.g. a "Retry now" button). */
  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  /** A new client id for the next connection (another person signed in: ids are bound to
   * the principal that first used them). */
  renewClientId() {
    this.clientId = newClientId();
  }

  /** Forget the cursor: the next connection starts live, without replay. */
  resetCursor() {
    this.since = null;
    this.epoch = null;
  }

  /** @returns {string} the WebSocket URL for the next attempt, with the cursor */
  url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const params = new URLSearchParams({ client_id: this.clientId, batch: '1' });
    if (this.resume && this.since !== null) {
      params.set('since', String(this.since));
      if (this.epoch) params.set('epoch', this.epoch);
    }
    return `${scheme}//${location.host}${this.path}?${params}`;
  }

  /** @private */
  connect() {
    this.retryTimer = 0;
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (error) {
      console.error('cannot open a WebSocket', error);
      this.failures += 1;
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    if (this.state === SocketState.CLOSED || this.state === SocketState.DENIED) this.setState(SocketState.CONNECTING);
    this.openTimer = setTimeout(() => this.abandon(ws, 'no answer'), OPEN_TIMEOUT_MS);
    ws.onmessage = (event) => this.handleMessage(event.data);
    ws.onclose = (event) => this.handleClose(ws, event.code, event.reason);
    ws.onerror = () => {}; // a close event always follows and carries what we need
  }

  /**
   * Give up on a connection that went silent or never opened, and retry.
   * @private
   * @param {WebSocket} ws
   * @param {string} reason
   */
  abandon(ws, reason) {
    if (ws !== this.ws) return;
    ws.onclose = ws.onmessage = ws.onerror = null;
    try {
      ws.close(CloseCode.NORMAL, reason);
    } catch {
      /* already closing */
    }
    this.handleClose(ws, 1006, reason);
  }

  /**
   * @private
   * @param {string} text a frame: one envelope, or an array of them (`batch=1`)
   */
  handleMessage(text) {
    this.lastHeard = Date.now();
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      console.warn('ignoring a frame that is not JSON', text);
      return;
    }
    const messages = Array.isArray(parsed) ? parsed : [parsed];
    /** @type {Envelope[]} */
    const accepted = [];
    for (const message of messages) {
      if (!message || typeof message !== 'object') continue;
      const type = message.event_type;
      if (type === 'connection_established') {
        if (accepted.length) this.options.onEvents(accepted.splice(0));
        this.established(message.data || {});
      } else if (type === 'heartbeat') {
        // the server's keep-alive (or the answer to ours): nothing to show
      } else if (this.resume && typeof message.seq === 'number') {
        if (this.since !== null && message.seq <= this.since) {
          this.duplicates += 1;
          continue;
        }
        if (this.since !== null && message.seq > this.since + 1) {
          this.options.onGap?.(this.since, message.seq);
        }
        this.since = message.seq;
        accepted.push(message);
      } else {
        accepted.push(message);
      }
    }
    if (accepted.length) this.options.onEvents(accepted);
  }

  /**
   * @private
   * @param {Record<string, any>} info the `connection_established` data
   */
  established(info) {
    clearTimeout(this.openTimer);
    if (this.resume) {
      if (this.since === null) this.since = info.last_seq ?? 0;
      this.epoch = info.epoch ?? this.epoch;
    }
    const reconnected = this.everConnected;
    this.everConnected = true;
    this.failures = 0;
    const serverBeat = Number(info.heartbeat_interval) * 1000;
    this.silenceMs = Math.max(45_000, SILENCE_FACTOR * (serverBeat || HEARTBEAT_MS));
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => this.beat(), Math.min(this.heartbeatMs, this.silenceMs / 2));
    this.setState(SocketState.CONNECTED);
    this.options.onEstablished?.(info, reconnected);
  }

  /** @private Send our heartbeat; drop a connection that has gone silent. */
  beat() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastHeard > this.silenceMs) {
      this.abandon(ws, 'server went silent');
      return;
    }
    ws.send('{"type":"heartbeat"}');
  }

  /**
   * @private
   * @param {WebSocket} ws
   * @param {number} code
   * @param {string} reason
   */
  handleClose(ws, code, reason) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.clearConnectionTimers();
    if (this.stopped) return;
    if (code === CloseCode.UNKNOWN_TASK) {
      this.stopped = true;
      this.setState(SocketState.CLOSED);
      this.options.onGone?.(reason || 'the task does not exist');
      return;
    }
    if (code === CloseCode.UNAUTHENTICATED || code === CloseCode.FORBIDDEN) {
      // retrying would be refused the same way: stop, and say why
      this.stopped = true;
      window.removeEventListener('online', this.handleOnline);
      window.removeEventListener('offline', this.handleOffline);
      clearTimeout(this.retryTimer);
      this.setState(SocketState.DENIED);
      const fallback = code === CloseCode.UNAUTHENTICATED ? 'not signed in' : 'not allowed';
      this.options.onDenied?.(code, reason || fallback);
      return;
    }
    if (code === CloseCode.VOID_CURSOR || code === CloseCode.BAD_QUERY) {
      this.resetCursor();
      this.options.onReset?.();
      this.failures = 0;
      this.retryTimer = setTimeout(() => this.connect(), 0);
      return;
    }
    this.failures += 1;
    this.scheduleRetry();
  }

  /** @private */
  scheduleRetry() {
    const offline = this.failures >= OFFLINE_AFTER || navigator.onLine === false;
    if (offline) this.setState(SocketState.OFFLINE);
    else this.setState(this.everConnected ? SocketState.RECONNECTING : SocketState.CONNECTING);
    this.retryTimer = setTimeout(() => this.connect(), backoffDelay(this.failures));
  }

  /** @private */
  clearConnectionTimers() {
    clearTimeout(this.openTimer);
    clearInterval(this.heartbeatTimer);
  }

  /**
   * @private
   * @param {SocketStateName} state
   */
  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.options.onState?.(state);
  }
}
