/**
 * A task's sections and their subtasks as checkboxes. Ticking one calls
 * `POST /api/v1/tasks/{id}/subtasks/{subtask_id}/toggle`; every viewer (this one included)
 * then sees the `subtask_updated` event. The box is disabled while the request runs and
 * put back if it fails (the error is shown). For a role that may not change the checklist
 * the boxes are disabled and a note says why.
 * @module checklist
 */

import { api } from './api.js';
import { h, setAttr, setText } from './dom.js';

/** What ticking a subtask needs, and how its refusal is said. */
const TICK = { action: 'edit_checklist', what: 'tick subtasks' };

export class Checklist {
  /**
   * @param {{root: HTMLElement, count: HTMLElement, note: HTMLElement}} elements
   * @param {{taskId: () => string|null, onError: (context: string, error: unknown) => void,
   *   session: import('./session.js').Session}} hooks
   */
  constructor(elements, hooks) {
    this.el = elements;
    this.hooks = hooks;
    /** @type {Map<string, HTMLInputElement>} subtask id → its checkbox */
    this.boxes = new Map();
    /** @type {Set<string>} subtasks whose toggle request is running */
    this.busy = new Set();
    /** Why the boxes are disabled (`null`: they are not). */
    this.refused = null;
    this.shape = '';
    elements.root.addEventListener('change', (event) => {
      const box = /** @type {HTMLInputElement} */ (event.target);
      if (box.matches('input[type="checkbox"][data-subtask-id]')) this.toggle(box);
    });
  }

  /**
   * Show the task's sections; rebuilds only when sections or subtasks were added, removed,
   * renamed or moved, otherwise just updates the boxes.
   * @param {import('./types.js').Section[]} sections
   */
  show(sections) {
    const shape = JSON.stringify(sections.map((s) => [s.id, s.title, s.subtasks.map((t) => [t.id, t.title])]));
    if (shape !== this.shape) {
      this.shape = shape;
      this.build(sections);
    }
    let done = 0;
    let total = 0;
    for (const section of sections) {
      for (const subtask of section.subtasks) {
        total += 1;
        if (subtask.done) done += 1;
        const box = this.boxes.get(subtask.id);
        if (box && !this.busy.has(subtask.id) && box.checked !== subtask.done) box.checked = subtask.done;
      }
    }
    setText(this.el.count, total ? `(${done} of ${total} done)` : '');
  }

  /** Enable the boxes, or disable them with the reason, as the signed-in role allows. */
  applyAccess() {
    this.refused = this.hooks.session.denial(TICK.action, TICK.what);
    for (const [id, box] of this.boxes) {
      box.disabled = Boolean(this.refused) || this.busy.has(id);
      setAttr(box, 'title', this.refused);
      setAttr(box, 'aria-describedby', this.refused ? 'checklist-note' : null);
    }
    setText(this.el.note, this.refused ? `${this.refused}.` : '');
    this.el.note.hidden = !this.refused;
  }

  /**
   * @private
   * @param {import('./types.js').Section[]} sections
   */
  build(sections) {
    this.boxes.clear();
    if (!sections.length) {
      this.el.root.replaceChildren(h('p', { class: 'muted' }, 'No sections yet.'));
      return;
    }
    this.el.root.replaceChildren(
      ...sections.map((section) =>
        h(
          'section',
          { class: 'checklist-section', 'aria-labelledby': `sec-${section.id}` },
          h('h3', { id: `sec-${section.id}`, class: 'minor-title' }, section.title),
          section.subtasks.length
            ? h('ul', { class: 'checklist' }, section.subtasks.map((subtask) => this.item(subtask)))
            : h('p', { class: 'muted' }, 'No subtasks.'),
        ),
      ),
    );
  }

  /**
   * @private
   * @param {import('./types.js').Subtask} subtask
   * @returns {HTMLElement}
   */
  item(subtask) {
    const id = `sub-${subtask.id}`;
    const box = /** @type {HTMLInputElement} */ (
      h('input', {
        type: 'checkbox',
        id,
        checked: subtask.done,
        disabled: Boolean(this.refused),
        title: this.refused,
        'aria-describedby': this.refused ? 'checklist-note' : null,
        dataset: { subtaskId: subtask.id },
      })
    );
    this.boxes.set(subtask.id, box);
    return h('li', {}, box, h('label', { for: id }, subtask.title));
  }

  /**
   * @private
   * @param {HTMLInputElement} box
   */
  async toggle(box) {
    const taskId = this.hooks.taskId();
    const subtaskId = box.dataset.subtaskId;
    if (!taskId || !subtaskId) return;
    const wanted = box.checked;
    this.busy.add(subtaskId);
    box.disabled = true;
    try {
      const subtask = await api(
        `/api/v1/tasks/${encodeURIComponent(taskId)}/subtasks/${encodeURIComponent(subtaskId)}/toggle`,
        // a flip, not a copy written back: any version (the server may require If-Match)
        { method: 'POST', ifMatch: '*' },
      );
      box.checked = subtask.done;
      if (subtask.done !== wanted) this.hooks.onError('The subtask changed meanwhile', `it is now ${subtask.done ? 'done' : 'not done'}`);
    } catch (error) {
      box.checked = !wanted;
      this.hooks.onError('Could not tick the subtask', error);
    } finally {
      this.busy.delete(subtaskId);
      box.disabled = Boolean(this.refused);
    }
  }

  /**
   * Record a `subtask_updated` event in `sections` (returns whether it was found).
   * @param {import('./types.js').Section[]} sections
   * @param {{subtask_id: string, done?: boolean|null, title?: string|null}} data
   * @returns {boolean}
   */
  static applyUpdate(sections, data) {
    for (const section of sections) {
      for (const subtask of section.subtasks) {
        if (subtask.id === data.subtask_id) {
          if (typeof data.done === 'boolean') subtask.done = data.done;
          if (data.title) subtask.title = data.title;
          return true;
        }
      }
    }
    return false;
  }
}
