/**
 * The requests of the open task, in its panel: each with what became of it (open →
 * answered / approved / rejected / expired / cancelled, by whom, the answer), the open ones
 * answerable there (request-form.js).
 *
 * Loaded with the panel (`GET /api/v1/tasks/{id}/requests`), then kept live from the task's
 * `request.*` events, whose data is the whole request after the change. A request that left
 * `open` never goes back, so an older copy arriving late changes nothing.
 * @module task-requests
 */

import { api } from './api.js';
import { h, setText } from './dom.js';
import { relativeTime } from './format.js';
import { REQUEST_STATUS_LABELS, RequestForm, actorName, expiryText, outcomeDetail } from './request-form.js';

/** @typedef {import('./types.js').Request} Request */

/**
 * @typedef {object} TaskRequestsElements
 * @property {HTMLElement} list
 * @property {HTMLElement} empty
 * @property {HTMLElement} count
 */

export class TaskRequests {
  /**
   * @param {TaskRequestsElements} el
   * @param {{session: import('./session.js').Session,
   *   notices: import('./notices.js').Notices,
   *   agents: import('./agents.js').AgentDirectory}} services
   */
  constructor(el, services) {
    this.el = el;
    this.session = services.session;
    this.notices = services.notices;
    this.agents = services.agents;
    /** @type {Map<string, {request: Request, element: HTMLElement, form: RequestForm|null}>} */
    this.items = new Map();
    /** Bumped by {@link reset}: a load made before it is ignored. */
    this.generation = 0;
    this.session.subscribe(() => {
      for (const item of this.items.values()) item.form?.applyAccess();
    });
  }

  /** Forget the requests shown (another task). */
  reset() {
    this.generation += 1;
    this.items.clear();
    this.el.list.replaceChildren();
    this.render();
  }

  /**
   * Fetch the task's requests (errors are shown).
   * @param {string} taskId
   */
  async load(taskId) {
    const generation = this.generation;
    try {
      /** @type {{requests: Request[]}} */
      const page = await api(`/api/v1/tasks/${encodeURIComponent(taskId)}/requests`);
      if (generation !== this.generation) return;
      for (const request of page.requests) this.apply(request);
    } catch (error) {
      if (generation === this.generation) this.notices.error('Could not load the requests of the task', error);
    }
  }

  /**
   * A request as it is now (from an event, an answer, or the list).
   * @param {Request} request
   */
  apply(request) {
    if (!request || typeof request.id !== 'string') return;
    const known = this.items.get(request.id);
    if (known) {
      // nothing moves out of a final status; an open one stays as shown (its form is kept)
      if (known.request.status !== 'open' || request.status === 'open') return;
      const fresh = this.item(request);
      known.element.replaceWith(fresh.element);
      this.items.set(request.id, fresh);
    } else {
      const fresh = this.item(request);
      this.items.set(request.id, fresh);
      this.place(fresh.element, request);
    }
    this.render();
  }

  /**
   * @private Insert an item in order of creation (oldest first).
   * @param {HTMLElement} element
   * @param {Request} request
   */
  place(element, request) {
    for (const child of this.el.list.children) {
      const other = this.items.get(/** @type {HTMLElement} */ (child).dataset.requestId ?? '');
      if (other && other.request.created_at > request.created_at) {
        this.el.list.insertBefore(element, child);
        return;
      }
    }
    this.el.list.append(element);
  }

  /**
   * @private
   * @param {Request} request
   * @returns {{request: Request, element: HTMLElement, form: RequestForm|null}}
   */
  item(request) {
    const open = request.status === 'open';
    const form = open
      ? new RequestForm(request, {
        scope: 'task',
        session: this.session,
        notices: this.notices,
        onChanged: (now) => this.apply(now),
      })
      : null;
    /** @type {(id: string) => string} */
    const agentName = (id) => this.agents.name(id);
    const expiry = open ? expiryText(request.expires_at) : '';
    const titleId = `task-${request.id}-title`;
    const element = h(
      'li',
      { class: 'request-item', dataset: { requestId: request.id, status: request.status }, 'aria-labelledby': titleId },
      h('h3', { class: 'request-question', id: titleId },
        h('span', { class: 'kind-badge' }, request.kind === 'approval' ? 'Approval' : 'Question'), ' ',
        request.question),
      h('p', { class: 'request-meta muted' },
        'asked by ', actorName(request.created_by, agentName), ' ',
        h('time', { datetime: request.created_at, title: new Date(request.created_at).toLocaleString() },
          relativeTime(request.created_at)),
        expiry ? ` · ${expiry}` : null,
        request.kind === 'approval' && request.action ? [' · action ', h('code', {}, request.action.name)] : null),
      h('p', { class: 'request-outcome' },
        h('span', { class: `request-status request-status-${request.status}` }, REQUEST_STATUS_LABELS[
          /** @type {keyof typeof REQUEST_STATUS_LABELS} */ (request.status)] ?? request.status),
        ' ', open ? 'waiting for an answer' : outcomeDetail(request, agentName)),
      form?.element ?? null,
    );
    return { request, element, form };
  }

  /** @private The count and the empty note. */
  render() {
    const open = [...this.items.values()].filter((item) => item.request.status === 'open').length;
    const all = this.items.size;
    setText(this.el.count, all ? `(${open} open of ${all})` : '');
    this.el.empty.hidden = all > 0;
  }
}
