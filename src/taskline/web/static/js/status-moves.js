/**
 * Moving a task to another status from the board: which column a task is in, which moves the
 * state machine allows (a copy of `taskline.domain.status.TRANSITIONS`; a test keeps the two
 * equal), who may make them, and the request that makes each one.
 *
 * Pausing, resuming and cancelling go through the control endpoints (`POST
 * /api/v1/tasks/{id}/pause|resume|cancel`: the task's agent is told); every other move is
 * `PATCH /api/v1/tasks/{id}` with the new `status` and `If-Match: *` (a move the state machine
 * judges, not a copy written back). The server decides in the end: its refusal (a task that
 * moved meanwhile, a role that may not) comes back as an {@link ApiError} to show.
 * @module status-moves
 */

import { api } from './api.js';
import { STATUS_LABELS } from './format.js';
import { orList } from './session.js';

/** @typedef {import('./types.js').Task} Task */

/**
 * The statuses each status may move to (`taskline.domain.status.TRANSITIONS`).
 * @type {Readonly<Record<string, readonly string[]>>}
 */
export const TRANSITIONS = Object.freeze({
  pending: ['in_progress', 'cancelled'],
  in_progress: ['paused', 'completed', 'failed', 'cancelled'],
  paused: ['in_progress', 'failed', 'cancelled'],
  completed: ['pending'],
  failed: ['pending', 'in_progress'],
  cancelled: ['pending'],
});

/** The statuses of a finished task. */
const FINISHED = new Set(['completed', 'failed', 'cancelled']);

/**
 * @typedef {object} Column
 * @property {string} id `pending`, `in_progress`, `needs_input`, `paused`, `done`
 * @property {string} title
 * @property {string[]} statuses what a task dropped here becomes (none: not a drop target)
 * @property {string} [why] for a column that takes no drop: why not
 */

/** @type {readonly Column[]} the board's columns, left to right */
export const COLUMNS = Object.freeze([
  { id: 'pending', title: 'Pending', statuses: ['pending'] },
  { id: 'in_progress', title: 'In progress', statuses: ['in_progress'] },
  {
    id: 'needs_input',
    title: 'Needs input',
    statuses: [],
    why: 'a task is here while its agent waits for a person’s answer; it leaves once answered',
  },
  { id: 'paused', title: 'Paused', statuses: ['paused'] },
  { id: 'done', title: 'Done / failed', statuses: ['completed', 'failed', 'cancelled'] },
]);

/** The statuses a move can go to, in the order the "Move to…" menu lists them. */
export const TARGETS = Object.freeze(['pending', 'in_progress', 'paused', 'completed', 'failed', 'cancelled']);

/** Moves made through a control endpoint (the agent is told), by target status. */
const CONTROL_OF = /** @type {Readonly<Record<string, 'pause'|'resume'|'cancel'>>} */ ({
  paused: 'pause',
  cancelled: 'cancel',
});

/**
 * Whether a task waits for a person (`needs_input` in its document; missing means no). A
 * finished task waits for nobody.
 * @param {{status: string, needs_input?: boolean}} task
 * @returns {boolean}
 */
export function needsInput(task) {
  return task.needs_input === true && !FINISHED.has(task.status);
}

/**
 * The column a task is shown in.
 * @param {{status: string, needs_input?: boolean}} task
 * @returns {string} a {@link COLUMNS} id
 */
export function columnOf(task) {
  if (needsInput(task)) return 'needs_input';
  if (FINISHED.has(task.status)) return 'done';
  return task.status;
}

/**
 * @param {string} status
 * @returns {string} "In progress"
 */
export function statusLabel(status) {
  return STATUS_LABELS[status] ?? status;
}

/**
 * How a move to `to` is made from `from`: through a control endpoint, or a PATCH; and the
 * action (`taskline.domain.access.Action`) it needs.
 * @param {string} from
 * @param {string} to
 * @returns {{control: 'pause'|'resume'|'cancel'|null, action: string, what: string}}
 */
export function moveRequest(from, to) {
  const control = to === 'in_progress' && from === 'paused' ? 'resume' : (CONTROL_OF[to] ?? null);
  if (control) return { control, action: 'control', what: `${control} tasks` };
  return { control: null, action: 'edit_tasks', what: 'change the status of tasks' };
}

/**
 * Why `task` may not move to `to` (a sentence), or `null` when it may: the state machine
 * first, then the role (`denial` is the session's, see session.js).
 * @param {{status: string}} task
 * @param {string} to
 * @param {(action: string, what: string) => string|null} denial
 * @returns {string|null}
 */
export function whyNot(task, to, denial) {
  const from = task.status;
  if (from === to) return `it is ${statusLabel(to).toLowerCase()} already`;
  const allowed = TRANSITIONS[from] ?? [];
  if (!allowed.includes(to)) {
    const choices = allowed.length ? orList(allowed.map((s) => statusLabel(s).toLowerCase())) : 'nothing';
    return `from ${statusLabel(from).toLowerCase()} it can only become ${choices}`;
  }
  const { action, what } = moveRequest(from, to);
  return denial(action, what);
}

/**
 * Ask the server to move a task; returns the task as it answers.
 * @param {Task} task as the page knows it
 * @param {string} to
 * @returns {Promise<Task>}
 * @throws {import('./api.js').ApiError} the server refused (its message says why)
 */
export async function moveTask(task, to) {
  const path = `/api/v1/tasks/${encodeURIComponent(task.id)}`;
  const { control } = moveRequest(task.status, to);
  if (control) {
    /** @type {Task & {delivered?: boolean}} */
    const answer = await api(`${path}/${control}`, { method: 'POST' });
    const { delivered: _delivered, ...fields } = answer;
    return { ...task, ...fields };
  }
  /** @type {Task} */
  const answer = await api(path, { method: 'PATCH', body: { status: to }, ifMatch: '*' });
  return answer;
}
