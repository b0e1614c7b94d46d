/**
 * Formatting for people: percentages, times, durations, labels, short JSON.
 * @module format
 */

/**
 * The task status each status event moves a task to.
 * @type {Readonly<Record<string, string>>}
 */
export const STATUS_OF_EVENT = Object.freeze({
  task_started: 'in_progress',
  task_resumed: 'in_progress',
  task_paused: 'paused',
  task_completed: 'completed',
  task_failed: 'failed',
  task_cancelled: 'cancelled',
});

/**
 * Labels of task statuses.
 * @type {Readonly<Record<string, string>>}
 */
export const STATUS_LABELS = Object.freeze({
  pending: 'Pending',
  in_progress: 'In progress',
  paused: 'Paused',
  completed: 'Completed',
  failed: 'Failed',
  cancelled: 'Cancelled',
});

/**
 * Labels of agent statuses.
 * @type {Readonly<Record<string, string>>}
 */
export const AGENT_STATUS_LABELS = Object.freeze({
  idle: 'Idle',
  working: 'Working',
  paused: 'Paused',
  error: 'Error',
  offline: 'Offline',
});

/**
 * `0.4` → `"40%"`; `null` → `"—"`.
 * @param {number|null|undefined} fraction
 * @returns {string}
 */
export function percent(fraction) {
  if (fraction === null || fraction === undefined || Number.isNaN(fraction)) return '—';
  return `${Math.round(fraction * 100)}%`;
}

/**
 * "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago", or a date for older times.
 * @param {string|number|Date|null} when
 * @param {number} [now] milliseconds since the epoch
 * @returns {string}
 */
export function relativeTime(when, now = Date.now()) {
  if (!when) return 'never';
  const then = new Date(when).getTime();
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 5) return 'just now';
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  if (seconds < 7 * 86400) return `${Math.floor(seconds / 86400)} d ago`;
  return new Date(then).toLocaleDateString();
}

/**
 * Local wall-clock time with seconds and milliseconds, e.g. "21:07:24.123".
 * @param {string|number|Date} when
 * @returns {string}
 */
export function clockTime(when) {
  const d = new Date(when);
  /** @type {(n: number, w?: number) => string} */
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/**
 * "held by agent_x until 14:05" for a task's lease (null when nobody holds the task); `name`
 * turns an agent id into its name.
 * @param {{agent_id: string, token: number, expires_at: string}|null|undefined} lease
 * @param {(id: string) => string} [name]
 * @returns {string|null}
 */
export function leaseText(lease, name = (id) => id) {
  if (!lease) return null;
  const until = new Date(lease.expires_at);
  /** @param {number} n */
  const pad = (n) => String(n).padStart(2, '0');
  return `held by ${name(lease.agent_id)} until ${pad(until.getHours())}:${pad(until.getMinutes())}`;
}

/**
 * `850` → "850 ms", `1400` → "1.4 s", `125000` → "2 min 5 s".
 * @param {number|null|undefined} ms
 * @returns {string}
 */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
}

/**
 * JSON on one line, cut to `max` characters with an ellipsis.
 * @param {any} value
 * @param {number} [max]
 * @returns {string}
 */
export function shortJson(value, max = 160) {
  let text;
  try {
    text = typeof value === 'string' ? value : JSON.stringify(value);
  } catch {
    text = String(value);
  }
  if (text === undefined) text = 'null';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * JSON laid out on several lines (for arguments and results).
 * @param {any} value
 * @returns {string}
 */
export function prettyJson(value) {
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value, null, 2) ?? 'null';
  } catch {
    return String(value);
  }
}
