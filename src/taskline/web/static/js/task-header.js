/**
 * The top of the task detail panel: title, status, priority and agent badges, description
 * (with its edit form), progress with the latest message, confidence, the start / pause /
 * resume / cancel buttons and the export links. It shows the task it is given and reports
 * the task the server answers after an edit or a control (the live stream confirms it too).
 * Edit and the buttons the signed-in role may not use are disabled, with the reason in their
 * `title` and in a note under the buttons.
 * @module task-header
 */

import { api, isStale } from './api.js';
import { $, $of, setAttr, setText } from './dom.js';
import { AGENT_STATUS_LABELS, STATUS_LABELS, leaseText, percent } from './format.js';
import { orList } from './session.js';
import { setBar } from './task-card.js';

/**
 * Which control buttons a status allows (the server's state machine decides in the end).
 * @type {Readonly<Record<string, readonly string[]>>}
 */
const CONTROLS = {
  start: ['pending', 'failed'],
  pause: ['in_progress'],
  resume: ['paused'],
  cancel: ['pending', 'in_progress', 'paused'],
};

/** What each button needs (`taskline.domain.access.Action`): starting is an edit (a status
 * change by PATCH), pause/resume/cancel are `control`.
 * @type {Readonly<Record<string, string>>} */
const CONTROL_ACTIONS = { start: 'edit_tasks', pause: 'control', resume: 'control', cancel: 'control' };
const EDIT_ACTION = 'edit_tasks';

export class TaskHeader {
  /**
   * @param {HTMLElement} root the detail view
   * @param {{agents: import('./agents.js').AgentDirectory,
   *   notices: import('./notices.js').Notices,
   *   session: import('./session.js').Session,
   *   task: () => import('./types.js').Task|null,
   *   onChanged: (task: import('./types.js').Task) => void}} hooks
   */
  constructor(root, hooks) {
    this.hooks = hooks;
    this.el = {
      title: $('#detail-title', root),
      status: $('#detail-status', root),
      priority: $('#detail-priority', root),
      agent: $('#detail-agent', root),
      lease: $('#detail-lease', root),
      description: $('#detail-description', root),
      progress: $('#detail-progress', root),
      progressValue: $('#detail-progress-value', root),
      progressMessage: $('#detail-progress-message', root),
      confidence: $('#detail-confidence', root),
      confidenceValue: $('#detail-confidence-value', root),
      controls: $('#controls', root),
      controlsNote: $('#controls-note', root),
      exports: $('#exports', root),
      editButton: $of('#edit-button', HTMLButtonElement, root),
      editForm: /** @type {HTMLFormElement} */ ($('#edit-form', root)),
      editTitle: /** @type {HTMLInputElement} */ ($('#edit-title', root)),
      editDescription: /** @type {HTMLTextAreaElement} */ ($('#edit-description', root)),
      editCancel: $('#edit-cancel', root),
      editConflict: $('#edit-conflict', root),
      editConflictText: $('#edit-conflict-text', root),
      editReload: $('#edit-reload', root),
    };
    this.editing = false;
    this.opening = false;
    /** The task's version when the form was opened (or reloaded): saving is conditional on
     * it, so a change someone else made meanwhile is never overwritten unseen.
     * @type {number|null} */
    this.editVersion = null;
    /** The title and description the form was opened (or reloaded) with. */
    this.editBase = { title: '', description: '' };
    this.wire();
  }

  /** @returns {string} the API path of the task shown */
  base() {
    return `/api/v1/tasks/${encodeURIComponent(this.hooks.task()?.id ?? '')}`;
  }

  /**
   * Prepare for another task: the export links point at it, the edit form closes, the
   * buttons wait until the task is loaded.
   * @param {string} taskId
   */
  reset(taskId) {
    for (const link of this.el.exports.querySelectorAll('a')) {
      const format = link.dataset.format;
      if (format) link.setAttribute('href', `/api/v1/tasks/${encodeURIComponent(taskId)}/export/${format}`);
    }
    for (const button of this.el.controls.querySelectorAll('button')) button.disabled = true;
    this.editing = false;
    this.el.editForm.hidden = true;
    this.showConflict(false);
    this.el.editButton.setAttribute('aria-expanded', 'false');
    setText(this.el.title, 'Loading…');
    this.applyAccess();
  }

  /** Enable Edit, or disable it with the reason, and say which controls the role may not use
   * (the buttons themselves follow in `show`). */
  applyAccess() {
    const session = this.hooks.session;
    const editRefused = session.denial(EDIT_ACTION, 'edit tasks');
    this.el.editButton.disabled = Boolean(editRefused);
    setAttr(this.el.editButton, 'title', editRefused);
    if (editRefused && this.editing) {
      this.editing = false;
      this.el.editForm.hidden = true;
      this.el.editButton.setAttribute('aria-expanded', 'false');
    }
    const refused = Object.keys(CONTROL_ACTIONS).filter((name) => !session.may(CONTROL_ACTIONS[name]));
    if (editRefused) refused.unshift('edit');
    const note = refused.length ? `${session.cannot(`${orList(refused)} tasks`)}.` : '';
    setText(this.el.controlsNote, note);
    this.el.controlsNote.hidden = !note;
  }

  /**
   * Show a task.
   * @param {import('./types.js').Task} task
   * @param {{progressMessage: string, gone: boolean}} extra
   */
  show(task, { progressMessage, gone }) {
    const agents = this.hooks.agents;
    setText(this.el.title, task.title);
    setAttr(this.el.status, 'data-status', task.status);
    setText(this.el.status, STATUS_LABELS[task.status] ?? task.status);
    setAttr(this.el.priority, 'data-priority', task.priority);
    setText(this.el.priority, `${task.priority} priority`);
    const agent = agents.get(task.assigned_agent_id);
    const agentStatus = agent ? AGENT_STATUS_LABELS[agent.status] ?? agent.status : '…';
    setText(
      this.el.agent,
      task.assigned_agent_id ? `${agents.name(task.assigned_agent_id)} · ${agentStatus}` : 'No agent',
    );
    setAttr(this.el.agent, 'data-status', agent?.status ?? 'none');
    const lease = leaseText(task.lease, (id) => agents.name(id));
    setText(this.el.lease, lease ?? '');
    this.el.lease.hidden = !lease;
    setAttr(this.el.lease, 'title', task.lease ? `lease ${task.lease.token}, until ${task.lease.expires_at}` : null);
    setText(this.el.description, task.description || 'No description.');
    this.el.description.classList.toggle('muted', !task.description);
    setBar(this.el.progress, task.progress);
    setText(this.el.progressValue, percent(task.progress));
    setText(this.el.progressMessage, progressMessage);
    setBar(this.el.confidence, task.confidence);
    setText(this.el.confidenceValue, percent(task.confidence));
    const session = this.hooks.session;
    for (const button of this.el.controls.querySelectorAll('button')) {
      const action = button.dataset.action;
      const needs = action && CONTROL_ACTIONS[action];
      if (!action || !needs) continue;
      const refused = session.denial(needs, `${action} tasks`);
      button.disabled = gone || Boolean(refused) || !(CONTROLS[action] ?? []).includes(task.status);
      setAttr(button, 'title', refused);
    }
    this.applyAccess();
  }

  /** @private */
  wire() {
    this.el.controls.addEventListener('click', (event) => {
      const target = event.target instanceof Element ? event.target.closest('button[data-action]') : null;
      const action = target instanceof HTMLButtonElement ? target.dataset.action : undefined;
      if (action) this.control(action);
    });
    this.el.editButton.addEventListener('click', () => (this.editing ? this.stopEditing() : this.startEditing()));
    this.el.editCancel.addEventListener('click', () => this.stopEditing());
    this.el.editReload.addEventListener('click', () => this.reloadForEdit());
    this.el.editForm.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.stopPropagation();
        this.stopEditing();
      }
    });
    this.el.editForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this.saveEdit();
    });
  }

  /** @private Open the form on the task as the server has it now (the panel may have
   * applied live changes since its copy was read, or made some itself): saving is
   * conditional on that version, the one the form shows. */
  async startEditing() {
    const shown = this.hooks.task();
    if (!shown || this.opening) return;
    this.opening = true;
    /** @type {import('./types.js').Task} */
    let task;
    try {
      task = await api(this.base());
    } catch (error) {
      this.hooks.notices.error('Could not open the task for editing', error);
      return;
    } finally {
      this.opening = false;
    }
    if (this.hooks.task()?.id !== shown.id) return; // another task is shown by now
    this.hooks.onChanged(task);
    this.editing = true;
    this.editVersion = task.version ?? null;
    this.editBase = { title: task.title, description: task.description ?? '' };
    this.el.editTitle.value = this.editBase.title;
    this.el.editDescription.value = this.editBase.description;
    this.showConflict(false);
    this.el.editForm.hidden = false;
    this.el.editButton.setAttribute('aria-expanded', 'true');
    this.el.editTitle.focus();
  }

  /** @private */
  stopEditing() {
    this.editing = false;
    this.showConflict(false);
    this.el.editForm.hidden = true;
    this.el.editButton.setAttribute('aria-expanded', 'false');
    this.el.editButton.focus();
  }

  /**
   * @private Say (or stop saying) that the task changed since the form was opened.
   * @param {boolean} shown
   */
  showConflict(shown) {
    setText(
      this.el.editConflictText,
      shown
        ? 'This task was changed by someone else since you opened it — reload to see the '
          + 'changes. Nothing was saved; what you typed stays in the form.'
        : '',
    );
    this.el.editConflict.hidden = !shown;
  }

  /** @private After a conflict: show the task as it is now and edit from its new version.
   * What the person changed in the form stays, to save again or to cancel; a field they did
   * not touch takes the task's new value (so saving does not undo the other change). */
  async reloadForEdit() {
    const shown = this.hooks.task();
    if (!shown) return;
    try {
      /** @type {import('./types.js').Task} */
      const task = await api(this.base());
      if (this.hooks.task()?.id !== shown.id || !this.editing) return;
      this.hooks.onChanged(task);
      const fresh = { title: task.title, description: task.description ?? '' };
      if (this.el.editTitle.value === this.editBase.title) this.el.editTitle.value = fresh.title;
      if (this.el.editDescription.value === this.editBase.description) {
        this.el.editDescription.value = fresh.description;
      }
      this.editBase = fresh;
      this.editVersion = task.version ?? null;
      this.showConflict(false);
      this.el.editTitle.focus();
    } catch (error) {
      this.hooks.notices.error('Could not reload the task', error);
    }
  }

  /** @private PATCH the title and description, if the task is still at the version the form
   * was opened on (a 412 says someone else changed it: shown, nothing is overwritten). */
  async saveEdit() {
    const title = this.el.editTitle.value.trim();
    if (!title) {
      this.hooks.notices.error('Could not save', 'the title cannot be empty');
      this.el.editTitle.focus();
      return;
    }
    const button = $of('button[type="submit"]', HTMLButtonElement, this.el.editForm);
    button.disabled = true;
    try {
      /** @type {import('./types.js').Task} */
      const task = await api(this.base(), {
        method: 'PATCH',
        body: { title, description: this.el.editDescription.value },
        ifMatch: this.editVersion ?? '*',
      });
      this.hooks.onChanged(task);
      this.stopEditing();
    } catch (error) {
      if (isStale(error)) this.showConflict(true);
      else this.hooks.notices.error('Could not save the title and description', error);
    } finally {
      button.disabled = false;
    }
  }

  /**
   * @private Start, pause, resume or cancel the task (and tell its agent).
   * @param {string} action
   */
  async control(action) {
    for (const button of this.el.controls.querySelectorAll('button')) button.disabled = true;
    const before = this.hooks.task();
    if (!before) return;
    try {
      // starting is a status move the state machine judges, not a copy written back: any
      // version (the server may require an If-Match)
      /** @type {import('./types.js').Task & {delivered?: boolean}} */
      const task = action === 'start'
        ? await api(this.base(), { method: 'PATCH', body: { status: 'in_progress' }, ifMatch: '*' })
        : await api(`${this.base()}/${action}`, { method: 'POST' });
      const { delivered, ...fields } = task;
      this.hooks.onChanged({ ...before, ...fields });
      if (delivered === false && task.assigned_agent_id) {
        this.hooks.notices.info(`Done; the agent is told to ${action} when it connects.`);
      }
    } catch (error) {
      this.hooks.notices.error(`Could not ${action} the task`, error);
      this.hooks.onChanged(before); // puts the buttons back as the status allows
    }
  }
}
