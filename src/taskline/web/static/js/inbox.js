/**
 * "Needs you": the open requests of every task (`GET /api/v1/requests?status=open`), a
 * header button with their count, and a panel listing them, each answerable in place
 * (request-form.js).
 *
 * Live: the board stream carries every task's `request.*` events; each one (and each
 * `task_deleted`, `gap` and reconnection) fetches the list again — at most
 * one fetch at a time, one more after it if events came meanwhile. Items are kept by id, so
 * a refetch never wipes what the person is typing into a form.
 *
 * Browser notifications are opt-in: a button asks the browser's permission and the choice
 * is remembered (localStorage); then each request opened while the page is open (by someone
 * else) shows a notification, which opens the task when clicked.
 * @module inbox
 */

import { api } from './api.js';
import { h, setAttr, setText } from './dom.js';
import { relativeTime, shortJson } from './format.js';
import { ANSWER, RequestForm, actorName, expiryText } from './request-form.js';

/** @typedef {import('./types.js').Request} Request */
/** @typedef {import('./live-socket.js').Envelope} Envelope */

/** Where the notification choice is remembered. */
const NOTIFY_KEY = 'taskline.notify-requests';
/** Requests listed at most (the server's cap). */
const LIMIT = 500;

/**
 * @typedef {object} InboxElements
 * @property {HTMLButtonElement} button the header button (its count inside)
 * @property {HTMLElement} count
 * @property {HTMLElement} panel
 * @property {HTMLElement} list
 * @property {HTMLElement} empty
 * @property {HTMLElement} note the role's reason when it may not answer
 * @property {HTMLButtonElement} notify
 * @property {HTMLElement} notifyStatus
 * @property {HTMLButtonElement} close
 */

/**
 * Whether the browser can show notifications at all.
 * @returns {boolean}
 */
function notificationsExist() {
  return typeof window.Notification === 'function';
}

export class Inbox {
  /**
   * @param {InboxElements} el
   * @param {{session: import('./session.js').Session,
   *   notices: import('./notices.js').Notices,
   *   agents: import('./agents.js').AgentDirectory,
   *   taskTitle: (id: string) => string|undefined}} services
   */
  constructor(el, services) {
    this.el = el;
    this.session = services.session;
    this.notices = services.notices;
    this.agents = services.agents;
    this.taskTitle = services.taskTitle;
    /** @type {Map<string, {request: Request, element: HTMLElement, form: RequestForm}>} */
    this.items = new Map();
    /** @type {Map<string, string>} task titles fetched for requests of tasks the board has not loaded */
    this.titles = new Map();
    /** @type {Set<string>} requests already notified of (a reconnection may repeat an event) */
    this.seen = new Set();
    this.running = false;
    this.fetching = false;
    this.again = false;
    this.loaded = false;
    this.token = 0;
    el.button.addEventListener('click', () => this.toggle());
    el.close.addEventListener('click', () => this.toggle(false));
    el.notify.addEventListener('click', () => this.toggleNotifications());
    // going to a request's task closes the inbox (the task panel lists its requests too)
    el.list.addEventListener('click', (event) => {
      if (event.target instanceof Element && event.target.closest('a[href^="#/tasks/"]')) this.toggle(false);
    });
    el.panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.stopPropagation();
        this.toggle(false);
      }
    });
    this.session.subscribe(() => this.applyAccess());
    this.agents.subscribe(() => this.render());
    this.applyAccess();
    this.renderNotify();
  }

  /** Follow the open requests (signed in). */
  start() {
    if (this.running) return;
    this.running = true;
    this.el.button.hidden = false;
    this.refresh();
  }

  /** Forget every request shown (signed out). */
  stop() {
    this.running = false;
    this.token += 1;
    this.fetching = false;
    this.again = false;
    this.loaded = false;
    for (const item of this.items.values()) item.element.remove();
    this.items.clear();
    this.titles.clear();
    this.seen.clear();
    this.toggle(false);
    this.el.button.hidden = true;
    this.render();
  }

  /**
   * Events from the board stream: a request changed (fetch the list again; notify of new ones).
   * @param {Envelope[]} events
   */
  onEvents(events) {
    let changed = false;
    for (const event of events) {
      // a gap: the server dropped events while this page was behind (requests among them?)
      // a deleted task takes its requests with it (no request event says so)
      if (event.event_type === 'gap' || event.event_type === 'task_deleted') changed = true;
      if (!event.event_type.startsWith('request.')) continue;
      changed = true;
      if (event.event_type === 'request.opened') this.notifyOpened(/** @type {Request} */ (event.data));
    }
    if (changed) this.refresh();
  }

  /** Open or close the panel. @param {boolean} [open] */
  toggle(open = this.el.panel.hidden) {
    if (open === !this.el.panel.hidden) return;
    this.el.panel.hidden = !open;
    this.el.button.setAttribute('aria-expanded', String(open));
    if (open) {
      this.refresh();
      this.el.panel.focus();
    } else if (this.el.panel.contains(document.activeElement)) this.el.button.focus();
  }

  /** Fetch the open requests (again); a call while one runs asks for one more after it. */
  async refresh() {
    if (!this.running) return;
    if (this.fetching) {
      this.again = true;
      return;
    }
    this.fetching = true;
    const token = this.token;
    try {
      do {
        this.again = false;
        /** @type {{requests: Request[]}} */
        const page = await api(`/api/v1/requests?status=open&limit=${LIMIT}`);
        if (token !== this.token) return;
        this.show(page.requests);
      } while (this.again && token === this.token);
    } catch (error) {
      if (token === this.token) this.notices.error('Could not load the requests that need you', error);
    } finally {
      if (token === this.token) this.fetching = false;
    }
  }

  /**
   * @private Show these open requests (oldest first), keeping the items already shown.
   * @param {Request[]} requests
   */
  show(requests) {
    const open = requests.filter((request) => request.status === 'open');
    const ids = new Set(open.map((request) => request.id));
    for (const [id, item] of this.items) {
      if (!ids.has(id)) {
        item.element.remove();
        this.items.delete(id);
      }
    }
    open.sort((a, b) => a.created_at.localeCompare(b.created_at));
    for (const request of open) {
      if (!this.items.has(request.id)) this.items.set(request.id, this.item(request));
    }
    // keep the page's order equal to the list's
    open.forEach((request, index) => {
      const element = this.items.get(request.id)?.element;
      if (element && this.el.list.children[index] !== element) {
        this.el.list.insertBefore(element, this.el.list.children[index] ?? null);
      }
    });
    this.loaded = true;
    this.render();
  }

  /**
   * @private The list item of one open request.
   * @param {Request} request
   * @returns {{request: Request, element: HTMLElement, form: RequestForm}}
   */
  item(request) {
    const form = new RequestForm(request, {
      scope: 'inbox',
      session: this.session,
      notices: this.notices,
      onChanged: (now) => this.resolved(now),
    });
    const titleId = `inbox-${request.id}-title`;
    const expiry = expiryText(request.expires_at);
    const element = h(
      'li',
      { class: 'request-item', dataset: { requestId: request.id, kind: request.kind }, 'aria-labelledby': titleId },
      h('p', { class: 'request-task' },
        h('a', { href: `#/tasks/${encodeURIComponent(request.task_id)}`, class: 'request-task-link' },
          this.titleOf(request.task_id))),
      h('h3', { class: 'request-question', id: titleId },
        h('span', { class: 'kind-badge' }, request.kind === 'approval' ? 'Approval' : 'Question'), ' ',
        request.question),
      h('p', { class: 'request-meta muted' },
        'asked by ', h('span', { class: 'request-asker' }, actorName(request.created_by, (id) => this.agents.name(id))),
        ' ', h('time', { datetime: request.created_at, title: new Date(request.created_at).toLocaleString() },
          relativeTime(request.created_at)),
        expiry ? [' · ', h('time', { datetime: request.expires_at ?? '', class: 'request-expiry' }, expiry)] : null),
      form.element,
    );
    return { request, element, form };
  }

  /**
   * @private A task's title (from the board, or fetched once).
   * @param {string} taskId
   * @returns {string}
   */
  titleOf(taskId) {
    const known = this.taskTitle(taskId) ?? this.titles.get(taskId);
    if (known) return known;
    this.titles.set(taskId, taskId);
    api(`/api/v1/tasks/${encodeURIComponent(taskId)}`).then(
      (/** @type {import('./types.js').Task} */ task) => {
        this.titles.set(taskId, task.title);
        this.render();
      },
      (error) => console.warn('could not load the title of', taskId, error),
    );
    return taskId;
  }

  /**
   * @private A request was answered here (or elsewhere: a 409): it leaves the inbox.
   * @param {Request} request
   */
  resolved(request) {
    if (request.status === 'open') return;
    const item = this.items.get(request.id);
    if (!item) return;
    const wasFocused = item.element.contains(document.activeElement);
    item.element.remove();
    this.items.delete(request.id);
    this.notices.info(`“${shortJson(request.question, 60)}”: ${request.status}.`);
    this.render();
    if (wasFocused) {
      /** @type {HTMLElement|null} */
      const next = this.el.list.querySelector('input, select, textarea, button');
      (next ?? this.el.panel).focus();
    }
    this.refresh();
  }

  /** @private The count on the button, the titles and the empty note. */
  render() {
    const n = this.items.size;
    setText(this.el.count, String(n));
    this.el.count.hidden = n === 0;
    this.el.button.classList.toggle('has-requests', n > 0);
    setAttr(this.el.button, 'aria-label', `Needs you: ${n} open ${n === 1 ? 'request' : 'requests'}`);
    this.el.empty.hidden = !this.loaded || n > 0;
    for (const { request, element } of this.items.values()) {
      const link = element.querySelector('.request-task-link');
      if (link) setText(link, this.titleOf(request.task_id));
      const asker = element.querySelector('.request-asker');
      if (asker) setText(asker, actorName(request.created_by, (id) => this.agents.name(id)));
    }
  }

  /** @private Say why the role may not answer (the forms disable themselves). */
  applyAccess() {
    const reason = this.session.denial(ANSWER.action, ANSWER.what);
    setText(this.el.note, reason ? `${reason}: you can read what the agents ask, not answer it.` : '');
    this.el.note.hidden = !reason;
    for (const item of this.items.values()) item.form.applyAccess();
  }

  /** @returns {boolean} whether notifications were turned on here and the browser allows them */
  get notifying() {
    if (!notificationsExist() || Notification.permission !== 'granted') return false;
    try {
      return localStorage.getItem(NOTIFY_KEY) === 'on';
    } catch {
      return false;
    }
  }

  /** @private Turn notifications on (asking the browser) or off; remember the choice. */
  async toggleNotifications() {
    if (!notificationsExist()) return;
    const on = !this.notifying;
    if (on && Notification.permission !== 'granted') {
      try {
        await Notification.requestPermission();
      } catch (error) {
        console.warn('the notification permission request failed', error);
      }
    }
    try {
      if (on && Notification.permission === 'granted') localStorage.setItem(NOTIFY_KEY, 'on');
      else localStorage.removeItem(NOTIFY_KEY);
    } catch {
      /* private mode: the choice lasts for this page only */
    }
    this.renderNotify();
  }

  /** @private The notification button and what it says. */
  renderNotify() {
    const exists = notificationsExist();
    this.el.notify.hidden = !exists;
    if (!exists) {
      setText(this.el.notifyStatus, 'This browser cannot show notifications.');
      return;
    }
    const on = this.notifying;
    setText(this.el.notify, on ? 'Turn off notifications' : 'Notify me of new requests');
    this.el.notify.setAttribute('aria-pressed', String(on));
    let status = on ? 'Notifications are on for new requests while this page is open.' : '';
    if (!on && Notification.permission === 'denied') {
      status = 'The browser blocks notifications from this site; allow them in its settings.';
    }
    setText(this.el.notifyStatus, status);
  }

  /**
   * @private A request was opened: notify the person (if they turned it on and someone else asked).
   * @param {Request} request
   */
  notifyOpened(request) {
    if (!request || typeof request.id !== 'string' || this.seen.has(request.id)) return;
    this.seen.add(request.id);
    if (!this.notifying || request.created_by === this.session.me?.actor) return;
    const asker = actorName(request.created_by, (id) => this.agents.name(id));
    try {
      const notification = new Notification(`${asker} needs you: ${this.titleOf(request.task_id)}`, {
        body: request.question,
        tag: request.id,
      });
      notification.onclick = () => {
        window.focus();
        location.hash = `#/tasks/${encodeURIComponent(request.task_id)}`;
        notification.close();
      };
    } catch (error) {
      console.warn('could not show a notification', error);
    }
  }
}
