/**
 * One task on the board: title (a link to its detail panel), status, priority, progress bar,
 * confidence, assigned agent, who holds it and until when (a claimed task's lease), tags,
 * checklist count and last activity.
 * @module task-card
 */

import { h, setAttr, setText } from './dom.js';
import { AGENT_STATUS_LABELS, STATUS_LABELS, leaseText, percent, relativeTime } from './format.js';
import { needsInput } from './status-moves.js';

/**
 * Show a fraction in a bar element (`.bar` with a `.bar-fill` child and an ARIA role). An
 * unknown value reads "unknown": a `progressbar` drops `aria-valuenow` (indeterminate), a
 * `meter` must have one (ARIA requires it) and keeps 0 with that text.
 * @param {HTMLElement} bar
 * @param {number|null|undefined} fraction
 */
export function setBar(bar, fraction) {
  const known = typeof fraction === 'number';
  const value = known ? Math.min(1, Math.max(0, fraction)) : 0;
  const fill = /** @type {HTMLElement} */ (bar.firstElementChild);
  const transform = `scaleX(${value})`;
  if (fill.style.transform !== transform) fill.style.transform = transform;
  const now = known || bar.getAttribute('role') === 'meter' ? String(Math.round(value * 100)) : null;
  setAttr(bar, 'aria-valuenow', now);
  setAttr(bar, 'aria-valuetext', known ? percent(value) : 'unknown');
  setAttr(bar, 'data-value', known ? String(value) : null);
}

/**
 * @param {string} role `progressbar` or `meter`
 * @param {string} label accessible name
 * @param {string} [extra] more classes
 * @returns {HTMLElement}
 */
export function makeBar(role, label, extra = '') {
  return h(
    'div',
    { class: `bar ${extra}`.trim(), role, 'aria-label': label, 'aria-valuemin': '0', 'aria-valuemax': '100' },
    h('span', { class: 'bar-fill' }),
  );
}

/**
 * @param {{sections?: Array<{subtasks: Array<{done: boolean}>}>}} task
 * @returns {[number, number]} done, total
 */
export function checklistCount(task) {
  let done = 0;
  let total = 0;
  for (const section of task.sections ?? []) {
    for (const subtask of section.subtasks) {
      total += 1;
      if (subtask.done) done += 1;
    }
  }
  return [done, total];
}

export class TaskCard {
  /** @param {string} taskId */
  constructor(taskId) {
    const titleId = `card-${taskId}`;
    // not draggable itself: a drag on the card moves the task (column view), not the link
    this.link = h('a', { href: `#/tasks/${encodeURIComponent(taskId)}`, class: 'task-link', draggable: 'false' });
    this.status = h('span', { class: 'status-badge' });
    this.needsInput = h('span', { class: 'needs-input-badge', hidden: true }, 'Needs input');
    /** The column view's keyboard way to move the task ({@link StatusColumns}). */
    this.moveButton = h(
      'button',
      { type: 'button', class: 'card-move', 'aria-expanded': 'false', 'aria-controls': `move-${taskId}`, 'aria-describedby': titleId },
      'Move…',
    );
    this.moveMenu = h('div', { class: 'move-menu', id: `move-${taskId}`, hidden: true });
    this.priority = h('span', { class: 'priority' });
    this.progress = makeBar('progressbar', 'Progress');
    this.progressText = h('dd', { class: 'fact-progress' });
    this.confidence = makeBar('meter', 'Confidence', 'meter bar-small');
    this.confidenceText = h('span', { class: 'fact-confidence-value' });
    this.agent = h('dd', { class: 'fact-agent' });
    this.activity = h('time', { class: 'fact-activity' });
    this.checklist = h('dd', { class: 'fact-checklist' });
    this.tags = h('ul', { class: 'tags', 'aria-label': 'Tags' });
    this.lease = h('p', { class: 'lease', hidden: true });
    this.element = h(
      'li',
      { class: 'task-card', dataset: { taskId } },
      h(
        'article',
        { 'aria-labelledby': titleId },
        h(
          'div',
          { class: 'task-card-head' },
          h('h3', { id: titleId, class: 'task-title' }, this.link),
          h('span', { class: 'card-badges' }, this.needsInput, this.status),
        ),
        this.progress,
        this.lease,
        h(
          'dl',
          { class: 'facts' },
          h('div', {}, h('dt', {}, 'Progress'), this.progressText),
          h('div', {}, h('dt', {}, 'Confidence'), h('dd', { class: 'fact-confidence' }, this.confidence, this.confidenceText)),
          h('div', {}, h('dt', {}, 'Agent'), this.agent),
          h('div', {}, h('dt', {}, 'Last activity'), h('dd', {}, this.activity)),
          h('div', {}, h('dt', {}, 'Checklist'), this.checklist),
          h('div', {}, h('dt', {}, 'Priority'), h('dd', {}, this.priority)),
        ),
        this.tags,
        h('div', { class: 'card-move-row' }, this.moveButton, this.moveMenu),
      ),
    );
    /** @type {string|null} the tags shown, joined (`null`: none yet) */
    this.tagText = null;
  }

  /**
   * @param {import('./board.js').BoardTask} task
   * @param {import('./agents.js').AgentDirectory} agents
   */
  update(task, agents) {
    setText(this.link, task.title);
    setAttr(this.element, 'data-status', task.status);
    setAttr(this.status, 'data-status', task.status);
    setText(this.status, STATUS_LABELS[task.status] ?? task.status);
    const waiting = needsInput(task);
    this.needsInput.hidden = !waiting;
    setAttr(this.element, 'data-needs-input', waiting ? 'true' : null);
    setAttr(this.priority, 'data-priority', task.priority);
    setText(this.priority, task.priority);
    setBar(this.progress, task.progress);
    setText(this.progressText, percent(task.progress));
    setBar(this.confidence, task.confidence);
    setText(this.confidenceText, percent(task.confidence));
    const agent = agents.get(task.assigned_agent_id);
    const agentText = task.assigned_agent_id
      ? `${agents.name(task.assigned_agent_id)}${agent ? ` · ${AGENT_STATUS_LABELS[agent.status] ?? agent.status}` : ''}`
      : 'Unassigned';
    setText(this.agent, agentText);
    setAttr(this.agent, 'data-agent-status', agent ? agent.status : null);
    const lease = leaseText(task.lease, (id) => agents.name(id));
    setText(this.lease, lease ?? '');
    this.lease.hidden = !lease;
    setAttr(this.lease, 'title', task.lease ? `lease ${task.lease.token}, until ${task.lease.expires_at}` : null);
    const [done, total] = checklistCount(task);
    setText(this.checklist, total ? `${done}/${total}` : '—');
    this.touch(task);
    const tagText = (task.tags ?? []).join('\u0000');
    if (tagText !== this.tagText) {
      this.tagText = tagText;
      this.tags.replaceChildren(...(task.tags ?? []).map((tag) => h('li', { class: 'tag' }, tag)));
      this.tags.hidden = !(task.tags ?? []).length;
    }
  }

  /**
   * Whether the card can be moved (the column view) or not (the card grid): draggable, with
   * its "Move…" button.
   * @param {boolean} movable
   */
  setMovable(movable) {
    this.element.draggable = movable;
    this.moveButton.hidden = !movable;
    if (!movable) {
      this.moveButton.setAttribute('aria-expanded', 'false');
      this.moveMenu.hidden = true;
      this.moveMenu.replaceChildren();
    }
  }

  /**
   * Refresh only the "last activity" text (it ages while nothing happens).
   * @param {{lastActivity: string}} task
   */
  touch(task) {
    setAttr(this.activity, 'datetime', task.lastActivity);
    setText(this.activity, relativeTime(task.lastActivity));
  }
}
