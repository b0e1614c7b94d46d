/**
 * The board's column view: one column per status (pending, in progress, needs input, paused,
 * done / failed) holding the board's task cards, newest first. A card moves to another
 * status by dragging it onto a column (HTML5 drag and drop), or with its "Move…" button and
 * the list of statuses it opens (the keyboard way; Escape closes it). Moves the state machine
 * or the role forbid are marked while dragging and listed as unavailable, each with the
 * reason; a move the server refuses shows the server's message, and the card goes back to
 * where the server has it. The cards themselves are the board's (board.js): this module only
 * places them and moves tasks.
 * @module status-columns
 */

import { ApiError } from './api.js';
import { h, setAttr, setText } from './dom.js';
import { orList } from './session.js';
import { COLUMNS, TARGETS, columnOf, moveTask, statusLabel, whyNot } from './status-moves.js';

/** @typedef {import('./board.js').BoardTask} BoardTask */
/** @typedef {import('./task-card.js').TaskCard} TaskCard */

/** The drag data type that carries a task id. */
const DRAG_TYPE = 'application/x-taskline-task';

/**
 * @typedef {object} ColumnRefs
 * @property {import('./status-moves.js').Column} column
 * @property {HTMLElement} section
 * @property {HTMLElement} list
 * @property {HTMLElement} count
 * @property {HTMLElement} hint shown while a card is dragged: what a drop here does, or why not
 * @property {Map<string, HTMLElement>} zones status → its drop zone (the done column has three)
 */

export class StatusColumns {
  /**
   * @param {{root: HTMLElement, status: HTMLElement}} elements the columns' container and the
   *   line that says how the last move went (a live region)
   * @param {{task: (id: string) => BoardTask|undefined,
   *   session: import('./session.js').Session,
   *   notices: import('./notices.js').Notices,
   *   onMoved: (task: import('./types.js').Task) => void,
   *   onRefused: (id: string) => void}} hooks
   */
  constructor(elements, hooks) {
    this.el = elements;
    this.hooks = hooks;
    /** @type {Map<string, ColumnRefs>} column id → its elements */
    this.columns = new Map();
    /** @type {string|null} the task being dragged */
    this.dragged = null;
    /** @type {string|null} the reason of the last forbidden column the drag went over */
    this.refusedDrop = null;
    /** @type {Set<string>} tasks whose move request is running */
    this.moving = new Set();
    this.build();
    this.wire();
  }

  /** @private */
  build() {
    for (const column of COLUMNS) {
      const titleId = `column-${column.id}-title`;
      const count = h('span', { class: 'column-count muted' });
      const hint = h('p', { class: 'drop-hint', hidden: true });
      /** @type {Map<string, HTMLElement>} */
      const zones = new Map();
      for (const status of column.statuses) {
        zones.set(status, h('div', { class: 'drop-zone', dataset: { dropStatus: status } }, statusLabel(status)));
      }
      const list = h('ul', { class: 'column-list', 'aria-labelledby': titleId });
      const section = h(
        'section',
        { class: 'column', dataset: { column: column.id }, 'aria-labelledby': titleId },
        h('h2', { class: 'column-title' }, h('span', { id: titleId }, column.title), ' ', count),
        hint,
        zones.size > 1 ? h('div', { class: 'drop-zones' }, [...zones.values()]) : null,
        list,
      );
      this.columns.set(column.id, { column, section, list, count, hint, zones });
      this.el.root.append(section);
    }
  }

  /**
   * Put the cards in their columns in the order given (newest first), moving only those out
   * of place; a card that had the focus keeps it.
   * @param {Array<[string, TaskCard]>} cards
   */
  arrange(cards) {
    /** @type {Map<string, HTMLElement[]>} */
    const wanted = new Map([...this.columns.keys()].map((id) => [id, []]));
    for (const [id, card] of cards) {
      const task = this.hooks.task(id);
      if (task) wanted.get(columnOf(task))?.push(card.element);
    }
    for (const [id, elements] of wanted) {
      const refs = this.columns.get(id);
      if (!refs) continue;
      elements.forEach((element, index) => {
        if (refs.list.children[index] === element) return;
        const focused = document.activeElement instanceof HTMLElement && element.contains(document.activeElement)
          ? document.activeElement
          : null;
        refs.list.insertBefore(element, refs.list.children[index] ?? null);
        focused?.focus();
      });
      setText(refs.count, `(${elements.length})`);
    }
    this.refreshMenus();
  }

  /** @private */
  wire() {
    const root = this.el.root;
    root.addEventListener('dragstart', (event) => this.dragStart(event));
    root.addEventListener('dragend', () => this.dragEnd());
    root.addEventListener('dragover', (event) => this.dragOver(event));
    root.addEventListener('drop', (event) => this.drop(event));
    root.addEventListener('click', (event) => {
      const target = event.target instanceof Element ? event.target : null;
      const toggle = target?.closest('.card-move');
      if (toggle instanceof HTMLButtonElement) {
        this.toggleMenu(toggle);
        return;
      }
      const choice = target?.closest('.move-choice');
      if (choice instanceof HTMLButtonElement) this.choose(choice);
    });
    root.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape' || !(event.target instanceof Element)) return;
      const menu = event.target.closest('.move-menu');
      const toggle = menu?.closest('.task-card')?.querySelector('.card-move');
      if (menu && toggle instanceof HTMLButtonElement) {
        event.stopPropagation();
        this.closeMenu(toggle);
        toggle.focus();
      }
    });
  }

  /**
   * @private
   * @param {Element} element inside a card
   * @returns {string|null} the card's task id
   */
  taskIdOf(element) {
    const card = element.closest('.task-card');
    return card instanceof HTMLElement ? card.dataset.taskId ?? null : null;
  }

  /**
   * @private Why `task` may not go to `to`, or `null` (see status-moves.js).
   * @param {BoardTask} task
   * @param {string} to
   * @returns {string|null}
   */
  refusal(task, to) {
    if (this.moving.has(task.id)) return 'it is being moved';
    return whyNot(task, to, (action, what) => this.hooks.session.denial(action, what));
  }

  /**
   * @private
   * @param {DragEvent} event
   */
  dragStart(event) {
    const id = event.target instanceof Element ? this.taskIdOf(event.target) : null;
    const task = id ? this.hooks.task(id) : undefined;
    if (!id || !task || !event.dataTransfer) return;
    event.dataTransfer.setData(DRAG_TYPE, id);
    event.dataTransfer.setData('text/plain', task.title);
    event.dataTransfer.effectAllowed = 'move';
    this.dragged = id;
    this.refusedDrop = null;
    setAttr(this.el.root, 'data-dragging', id);
    for (const refs of this.columns.values()) {
      const statuses = refs.column.statuses;
      const reasons = statuses.map((status) => this.refusal(task, status));
      const allowed = reasons.some((reason) => reason === null);
      setAttr(refs.section, 'data-drop', allowed ? 'allowed' : 'refused');
      statuses.forEach((status, index) => {
        const zone = refs.zones.get(status);
        if (zone) setAttr(zone, 'data-drop', reasons[index] === null ? 'allowed' : 'refused');
      });
      let hint;
      if (!statuses.length) hint = `Not a place to move to: ${refs.column.why ?? 'no status'}.`;
      else if (allowed) hint = `Drop to make it ${orList(statuses.filter((_, i) => reasons[i] === null).map((s) => statusLabel(s).toLowerCase()))}.`;
      else hint = `Cannot move here: ${reasons[0] ?? ''}.`;
      setText(refs.hint, hint);
      refs.hint.hidden = false;
    }
  }

  /** @private */
  dragEnd() {
    const id = this.dragged;
    this.dragged = null;
    setAttr(this.el.root, 'data-dragging', null);
    for (const refs of this.columns.values()) {
      setAttr(refs.section, 'data-drop', null);
      for (const zone of refs.zones.values()) setAttr(zone, 'data-drop', null);
      refs.hint.hidden = true;
    }
    const task = id ? this.hooks.task(id) : undefined;
    if (task && this.refusedDrop) this.say(`“${task.title}” was not moved: ${this.refusedDrop}.`);
    this.refusedDrop = null;
  }

  /**
   * @private The status a drop at `event` would give the dragged task (`null`: none), and
   * why it may not (`null`: it may).
   * @param {DragEvent} event
   * @returns {{to: string|null, reason: string|null}}
   */
  dropTarget(event) {
    const target = event.target instanceof Element ? event.target : null;
    const section = target?.closest('.column');
    const refs = section instanceof HTMLElement ? this.columns.get(section.dataset.column ?? '') : undefined;
    const task = this.dragged ? this.hooks.task(this.dragged) : undefined;
    if (!refs || !task) return { to: null, reason: null };
    const statuses = refs.column.statuses;
    if (!statuses.length) return { to: null, reason: refs.column.why ?? 'not a status' };
    const zone = target?.closest('.drop-zone');
    const zoned = zone instanceof HTMLElement ? zone.dataset.dropStatus : undefined;
    // on a column of several statuses, outside its zones: the first one allowed
    const to = zoned ?? statuses.find((status) => this.refusal(task, status) === null) ?? statuses[0] ?? null;
    return { to, reason: to ? this.refusal(task, to) : null };
  }

  /**
   * @private
   * @param {DragEvent} event
   */
  dragOver(event) {
    if (!this.dragged) return;
    const { to, reason } = this.dropTarget(event);
    if (to && reason === null) {
      event.preventDefault();
      if (event.dataTransfer) event.dataTransfer.dropEffect = 'move';
      this.refusedDrop = null;
    } else if (reason) {
      this.refusedDrop = reason;
      if (event.dataTransfer) event.dataTransfer.dropEffect = 'none';
    }
  }

  /**
   * @private
   * @param {DragEvent} event
   */
  drop(event) {
    const id = this.dragged;
    const { to, reason } = this.dropTarget(event);
    event.preventDefault();
    this.refusedDrop = null;
    const task = id ? this.hooks.task(id) : undefined;
    if (!task || !to) return;
    if (reason) this.say(`“${task.title}” was not moved: ${reason}.`);
    else this.move(task, to);
  }

  /**
   * @private Open or close a card's list of statuses to move to.
   * @param {HTMLButtonElement} toggle the card's "Move…" button
   */
  toggleMenu(toggle) {
    if (toggle.getAttribute('aria-expanded') === 'true') {
      this.closeMenu(toggle);
      return;
    }
    const id = this.taskIdOf(toggle);
    const task = id ? this.hooks.task(id) : undefined;
    const slot = toggle.closest('.task-card')?.querySelector('.move-menu');
    if (!task || !(slot instanceof HTMLElement)) return;
    for (const other of this.el.root.querySelectorAll('.card-move[aria-expanded="true"]')) {
      if (other instanceof HTMLButtonElement) this.closeMenu(other);
    }
    const items = TARGETS.map((status) =>
      h(
        'li',
        {},
        h('button', { type: 'button', class: 'move-choice', dataset: { status } }, statusLabel(status)),
        h('span', { id: `move-${task.id}-${status}-why`, class: 'move-why' }),
      ),
    );
    slot.replaceChildren(h('ul', { class: 'move-choices', 'aria-label': `Move “${task.title}” to` }, items));
    this.fillMenu(slot, task);
    slot.hidden = false;
    toggle.setAttribute('aria-expanded', 'true');
    const first = slot.querySelector('.move-choice:not([aria-disabled])') ?? slot.querySelector('.move-choice');
    if (first instanceof HTMLElement) first.focus();
  }

  /**
   * @private Mark each status of an open list available or not (with the reason), as the
   * task is now: its status may change while the list is open, and so may the role.
   * @param {HTMLElement} slot the card's `.move-menu`
   * @param {BoardTask} task
   */
  fillMenu(slot, task) {
    for (const choice of slot.querySelectorAll('.move-choice')) {
      if (!(choice instanceof HTMLElement) || !choice.dataset.status) continue;
      const reason = this.refusal(task, choice.dataset.status);
      const why = choice.nextElementSibling;
      setAttr(choice, 'aria-disabled', reason ? 'true' : null);
      setAttr(choice, 'aria-describedby', reason && why ? why.id : null);
      if (why) setText(why, reason ?? '');
    }
  }

  /** Bring the open lists of moves up to date (after a change of task or role). */
  refreshMenus() {
    for (const slot of this.el.root.querySelectorAll('.move-menu:not([hidden])')) {
      const id = slot instanceof HTMLElement ? this.taskIdOf(slot) : null;
      const task = id ? this.hooks.task(id) : undefined;
      if (task && slot instanceof HTMLElement) this.fillMenu(slot, task);
    }
  }

  /**
   * @private
   * @param {HTMLButtonElement} toggle
   */
  closeMenu(toggle) {
    toggle.setAttribute('aria-expanded', 'false');
    const slot = toggle.closest('.task-card')?.querySelector('.move-menu');
    if (slot instanceof HTMLElement) {
      slot.hidden = true;
      slot.replaceChildren();
    }
  }

  /**
   * @private A status picked in a card's menu: move there, or say why not.
   * @param {HTMLButtonElement} choice
   */
  choose(choice) {
    const id = this.taskIdOf(choice);
    const task = id ? this.hooks.task(id) : undefined;
    const to = choice.dataset.status;
    if (!task || !to) return;
    const reason = this.refusal(task, to);
    if (reason) {
      this.say(`“${task.title}” cannot become ${statusLabel(to).toLowerCase()}: ${reason}.`);
      return;
    }
    const toggle = choice.closest('.task-card')?.querySelector('.card-move');
    if (toggle instanceof HTMLButtonElement) {
      this.closeMenu(toggle);
      toggle.focus();
    }
    this.move(task, to);
  }

  /**
   * Move a task (the server's answer updates the board; a refusal is shown and the task
   * reloaded, so its card goes back to where the server has it).
   * @param {BoardTask} task
   * @param {string} to
   */
  async move(task, to) {
    const label = statusLabel(to).toLowerCase();
    this.moving.add(task.id);
    this.say(`Moving “${task.title}” to ${label}…`);
    try {
      const moved = await moveTask(task, to);
      this.hooks.onMoved(moved);
      this.say(`“${task.title}” is ${statusLabel(moved.status).toLowerCase()} now.`);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.say(`Could not move “${task.title}” to ${label}: ${reason}`);
      this.hooks.notices.error(`Could not move “${task.title}” to ${label}`, error);
      if (error instanceof ApiError && error.status !== 0) this.hooks.onRefused(task.id);
    } finally {
      this.moving.delete(task.id);
    }
  }

  /**
   * @private Say how a move went (the status line is a polite live region).
   * @param {string} text
   */
  say(text) {
    setText(this.el.status, text);
    this.el.status.hidden = false;
  }
}

