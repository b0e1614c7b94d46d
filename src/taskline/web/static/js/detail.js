/**
 * The task detail panel: one task, live from `/ws/tasks/{id}`.
 *
 * Loading without missing or doubling anything:
 * 1. connect without a cursor; `connection_established` gives the log head `L`, and from
 *    then on the socket delivers every event after `L` (held until step 3);
 * 2. fetch the task, its shared state and the last events up to `L` (history for the
 *    timeline, conversation and tool cards — not for task fields or state, which the fetch
 *    already has);
 * 3. apply the held live events, then each new one, once per animation frame.
 * After a drop the socket resumes from its last seq (see live-socket.js); a void cursor
 * (4409) starts again at step 1; a `gap` refetches task and state; 4404 or `task_deleted`
 * says the task is gone; 4401 or 4403 stops the stream (`onDenied`: the app asks the person
 * to sign in, or shows the reason).
 * @module detail
 */

import { api, ApiError } from './api.js';
import { STATUS_OF_EVENT } from './format.js';
import { $, setText } from './dom.js';
import { FrameScheduler } from './frame.js';
import { LiveSocket } from './live-socket.js';
import { TaskHeader } from './task-header.js';
import { Checklist } from './checklist.js';
import { Conversation } from './conversation.js';
import { ToolCalls } from './tool-calls.js';
import { Timeline } from './timeline.js';
import { TaskRequests } from './task-requests.js';
import { JsonView } from './json-view.js';
import { SharedState } from './shared-state.js';
import { Follow } from './follow.js';
import { debug } from './debug.js';

/** Events of history loaded with the panel. */
const HISTORY = 500;

/** @typedef {import('./live-socket.js').Envelope} Envelope */
/** @typedef {import('./types.js').Task} Task */

export class TaskDetail {
  /**
   * @param {HTMLElement} root the detail view
   * @param {{agents: import('./agents.js').AgentDirectory,
   *   status: import('./connection-status.js').ConnectionStatus,
   *   notices: import('./notices.js').Notices,
   *   session: import('./session.js').Session,
   *   onDenied: (code: number, reason: string) => void}} services
   */
  constructor(root, services) {
    this.root = root;
    this.agents = services.agents;
    this.status = services.status;
    this.notices = services.notices;
    this.session = services.session;
    this.onDenied = services.onDenied;
    const session = this.session;
    /** @type {(context: string, error: unknown) => void} */
    const onError = (context, error) => this.notices.error(context, error);
    /** @type {() => string|null} */
    const taskId = () => this.taskId;
    this.el = {
      gone: $('#detail-gone', root),
      banner: $('#detail-banner', root),
      stateVersion: $('#state-version', root),
    };
    this.header = new TaskHeader(root, {
      agents: this.agents,
      notices: this.notices,
      session,
      task: () => this.task,
      onChanged: (task) => {
        this.task = task;
        document.title = `${task.title} — Taskline`;
        this.taskDirty = true;
        this.frame.schedule();
      },
    });
    this.checklist = new Checklist(
      { root: $('#checklist', root), count: $('#checklist-count', root), note: $('#checklist-note', root) },
      { taskId, onError, session },
    );
    this.conversation = new Conversation(
      {
        list: /** @type {HTMLOListElement} */ ($('#conversation', root)),
        empty: $('#conversation-empty', root),
        form: /** @type {HTMLFormElement} */ ($('#message-form', root)),
        text: /** @type {HTMLTextAreaElement} */ ($('#message-text', root)),
        status: $('#message-status', root),
        note: $('#message-note', root),
      },
      { taskId, onError, session },
    );
    this.toolCalls = new ToolCalls(/** @type {HTMLOListElement} */ ($('#tool-calls', root)), $('#tools-empty', root));
    this.timeline = new Timeline(
      {
        list: /** @type {HTMLOListElement} */ ($('#timeline', root)),
        group: /** @type {HTMLSelectElement} */ ($('#timeline-group', root)),
        text: /** @type {HTMLInputElement} */ ($('#timeline-text', root)),
        earlier: /** @type {HTMLButtonElement} */ ($('#timeline-earlier', root)),
        trimmed: $('#timeline-trimmed', root),
        count: $('#timeline-count', root),
      },
      {
        fetchPage: (since, limit) => api(`${this.base()}/events${`?since=${since}&limit=${limit}`}`),
        onError,
      },
    );
    this.requests = new TaskRequests(
      { list: $('#task-requests', root), empty: $('#requests-empty', root), count: $('#requests-count', root) },
      { session, notices: this.notices, agents: this.agents },
    );
    this.jsonView = new JsonView($('#state-view', root));
    /** Scroll boxes that stay on their newest item while the person is there. */
    this.followers = [
      ['#timeline-scroll', '#timeline'],
      ['.conversation-box', '#conversation'],
      ['.tool-calls-box', '#tool-calls'],
    ].map(([box, content]) => new Follow($(box, root), $(content, root)));
    this.frame = new FrameScheduler(() => this.flush());
    /** Bumped by each {@link resetView}: answers to requests made before it are ignored. */
    this.generation = 0;
    /** @type {string|null} the task shown */
    this.taskId = null;
    /** @type {Task|null} */
    this.task = null;
    /** @type {LiveSocket|null} */
    this.socket = null;
    /** @type {Envelope[]} live events not applied yet (held until the history is loaded) */
    this.pending = [];
    /** @type {number|null} the log head when the stream started: history ends there */
    this.historyEnd = null;
    this.loaded = false;
    this.loading = false;
    this.isGone = false;
    this.progressMessage = '';
    this.taskDirty = true;
    this.stateDirty = true;
    this.sharedState = this.newSharedState('');
    this.agents.subscribe(() => {
      this.taskDirty = true;
      if (this.task) this.frame.schedule();
    });
    session.subscribe(() => this.applyAccess());
    this.applyAccess();
  }

  /** Enable or disable (with the reason) what the signed-in role may or may not do. */
  applyAccess() {
    this.checklist.applyAccess();
    this.conversation.applyAccess();
    this.header.applyAccess();
    this.taskDirty = true;
    if (this.task) this.frame.schedule();
  }

  /** @returns {string} the task's API path */
  base() {
    return `/api/v1/tasks/${encodeURIComponent(this.taskId ?? '')}`;
  }

  /**
   * @private
   * @param {string} taskId
   * @returns {SharedState}
   */
  newSharedState(taskId) {
    return new SharedState(taskId, {
      onChange: () => {
        this.stateDirty = true;
        this.frame.schedule();
      },
      onError: (context, error) => this.notices.error(context, error),
    });
  }

  /**
   * Show a task (and follow it live until `close()`).
   * @param {string} taskId
   */
  open(taskId) {
    if (this.taskId === taskId && this.socket) return;
    this.close();
    this.taskId = taskId;
    this.resetView(taskId);
    this.isGone = false;
    this.el.gone.hidden = true;
    this.el.banner.hidden = true;
    this.connect(taskId);
  }

  /**
   * @private Open the task's live stream (history is loaded once it is established).
   * @param {string} taskId
   */
  connect(taskId) {
    this.socket = new LiveSocket({
      path: `/ws/tasks/${encodeURIComponent(taskId)}`,
      resume: true,
      onEvents: (events) => {
        this.pending.push(...events);
        if (this.loaded) this.frame.schedule();
      },
      onEstablished: (info) => {
        if (!this.loaded) this.load(info);
      },
      onState: () => this.status.render(),
      onReset: () => {
        this.notices.info('The event log was reset; reloading the task.');
        this.resetView(taskId);
      },
      onGone: (reason) => this.handleGone(taskId, reason),
      onGap: () => this.refetchTask(),
      onDenied: this.onDenied,
    });
    this.status.track('task', this.socket);
    this.socket.start();
  }

  /**
   * @private The stream says the task is unknown (4404). Either it was deleted, or it exists
   * but has no event log yet (tasks made by the demo seeding or an import get one with their
   * first change): then show it as it is now and try the stream again a little later.
   * @param {string} taskId
   * @param {string} reason
   */
  async handleGone(taskId, reason) {
    const generation = this.generation;
    this.status.untrack('task');
    this.socket = null;
    /** @type {Task} */
    let task;
    try {
      task = await api(this.base());
    } catch (error) {
      if (generation !== this.generation) return;
      if (error instanceof ApiError && error.status === 404) this.showGone(`This task no longer exists (${reason}).`);
      else this.notices.error('Could not load the task', error);
      return;
    }
    if (generation !== this.generation) return;
    this.task = task;
    this.renderTask();
    document.title = `${task.title} — Taskline`;
    this.ensureAgent();
    this.el.banner.hidden = false;
    setText(this.el.banner, 'Not live yet: this task has no event log until its first change. Checking again every few seconds…');
    setTimeout(() => {
      if (generation === this.generation && !this.socket) this.connect(taskId);
    }, 5000);
  }

  /** Stop following the open task. */
  close() {
    this.socket?.stop();
    this.socket = null;
    this.status.untrack('task');
    this.frame.cancel();
    this.taskId = null;
    this.task = null;
  }

  /**
   * @private Forget what is shown (new task, or a void cursor); late answers to requests
   * made before this are ignored (they belong to an older generation).
   * @param {string} taskId
   */
  resetView(taskId) {
    this.generation += 1;
    this.loaded = false;
    this.loading = false;
    this.historyEnd = null;
    this.pending = [];
    this.task = null;
    this.progressMessage = '';
    this.taskDirty = true;
    this.stateDirty = true;
    this.header.reset(taskId);
    this.sharedState = this.newSharedState(taskId);
    this.checklist.shape = '';
    for (const follower of this.followers) follower.reset();
    this.conversation.reset();
    this.toolCalls.reset();
    this.timeline.reset();
    this.requests.reset();
  }

  /**
   * @private Step 2: the task, its state and history up to the socket's starting point.
   * @param {Record<string, any>} info `connection_established` data
   */
  async load(info) {
    if (this.loading) return;
    this.loading = true;
    const generation = this.generation;
    this.historyEnd ??= Number(info.last_seq ?? 0);
    const end = this.historyEnd;
    const since = Math.max((info.first_seq ?? 1) - 1, end - HISTORY, 0);
    try {
      /** @type {[Task, {version: number, state: unknown}, {events: Envelope[], first_seq: number}]} */
      const [task, state, page] = await Promise.all([
        api(this.base()),
        api(`${this.base()}/state`),
        end > 0 ? api(`${this.base()}/events?since=${since}&limit=${end - since}`) : { events: [], first_seq: 1 },
      ]);
      if (generation !== this.generation || this.loaded) return;
      this.task = task;
      this.sharedState.load(state);
      this.timeline.setFirstSeq(page.first_seq);
      const history = page.events.filter((event) => event.seq !== null && event.seq <= end);
      for (const event of history) this.applyHistory(event);
      this.timeline.add(history);
      this.loaded = true;
      this.taskDirty = true;
      this.el.banner.hidden = true;
      document.title = `${task.title} — Taskline`;
      this.ensureAgent();
      this.requests.load(task.id);
      this.flush();
    } catch (error) {
      if (generation !== this.generation) return;
      if (error instanceof ApiError && error.status === 404) this.showGone('This task does not exist.');
      else this.notices.error('Could not load the task', error);
    } finally {
      if (generation === this.generation) this.loading = false;
    }
  }

  /**
   * @private An event from before the panel opened: it feeds the views that accumulate.
   * @param {Envelope} event
   */
  applyHistory(event) {
    const type = event.event_type;
    if (type.startsWith('message.') || (type === 'custom' && event.data?.name === 'task_message')) {
      this.conversation.apply(event);
    } else if (type.startsWith('tool_call.')) this.toolCalls.apply(event);
    else if (type === 'progress_update' && event.data?.message) this.progressMessage = event.data.message;
  }

  /**
   * @private A live event: it changes everything it is about.
   * @param {Envelope} event
   */
  applyLive(event) {
    const type = event.event_type;
    const d = event.data || {};
    const task = this.task;
    const status = STATUS_OF_EVENT[type];
    this.applyHistory(event);
    if ((type === 'task_updated' || type === 'task_created') && d.task) {
      this.task = { ...d.task };
    } else if (type === 'task_deleted') {
      this.showGone('This task was deleted.');
    } else if (status) {
      if (task) {
        task.status = status;
        if (task.status === 'completed') task.progress = 1;
      }
    } else if (type === 'progress_update') {
      if (task) {
        task.progress = d.progress;
        if (d.confidence !== null && d.confidence !== undefined) task.confidence = d.confidence;
      }
    } else if (type === 'confidence_update') {
      if (task) task.confidence = d.confidence;
    } else if (type === 'subtask_updated') {
      if (task && typeof d.subtask_id === 'string') {
        Checklist.applyUpdate(task.sections, { subtask_id: d.subtask_id, done: d.done, title: d.title });
      }
    } else if (type === 'agent_status_change') {
      this.agents.applyStatus(event);
    } else if (type.startsWith('request.')) {
      this.requests.apply(/** @type {import('./types.js').Request} */ (d));
    } else if (type === 'state.snapshot' || type === 'state.patch') {
      this.sharedState.apply(event);
    } else if (type === 'gap') {
      this.timeline.setFirstSeq(d.first_available_seq ?? 1);
      this.refetchTask();
    } else if (type === 'error' && d.code !== 'cursor_void') {
      console.warn('server error event', d);
    } else if (type === 'personal_message') {
      this.notices.info(typeof d.message === 'string' ? d.message : JSON.stringify(d));
    }
    this.taskDirty = true;
  }

  /** @private Apply pending live events and update the page: once per animation frame. */
  flush() {
    if (!this.loaded) return;
    const events = this.pending;
    this.pending = [];
    for (const event of events) this.applyLive(event);
    this.timeline.add(events);
    if (this.taskDirty && this.task) this.renderTask();
    if (this.stateDirty) {
      this.jsonView.render(this.sharedState.document);
      setText(this.el.stateVersion, `(version ${this.sharedState.version})`);
      this.stateDirty = false;
    }
    this.conversation.render();
    this.toolCalls.render();
    this.timeline.render();
    if (debug.onCommit && events.length) debug.onCommit(events);
  }

  /** @private */
  renderTask() {
    this.taskDirty = false;
    if (!this.task) return;
    this.header.show(this.task, { progressMessage: this.progressMessage, gone: this.isGone });
    this.checklist.show(this.task.sections ?? []);
  }

  /** @private Fetch task and state again (after a `gap` in the stream). */
  async refetchTask() {
    const generation = this.generation;
    try {
      /** @type {Task} */
      const task = await api(this.base());
      if (generation !== this.generation) return;
      this.task = task;
      this.taskDirty = true;
      this.frame.schedule();
    } catch (error) {
      this.notices.error('Could not reload the task', error);
    }
    this.sharedState.refetch();
  }

  /** @private Make sure the assigned agent's name and status are known. */
  ensureAgent() {
    const id = this.task?.assigned_agent_id;
    if (id) this.agents.ensure(id);
  }

  /**
   * @private
   * @param {string} message
   */
  showGone(message) {
    this.isGone = true;
    setText(this.el.gone, message);
    this.el.gone.hidden = false;
    this.socket?.stop();
    this.status.untrack('task');
    if (this.task) this.renderTask();
  }
}
