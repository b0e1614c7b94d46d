/**
 * The board: every task (newest first), live from `/ws/board`, with filters, search and a
 * form to create a task.
 *
 * The board stream has no replay: after each (re)connection the list is fetched again, and
 * events that arrive during that fetch are applied afterwards only if they are newer than
 * the fetched task (`updated_at`), so nothing goes backwards. Filters are applied by the
 * server when fetching and again here to each live change.
 *
 * The create form is disabled, with the reason shown, for a role that may not create tasks.
 *
 * Two views of the same cards, the choice remembered in localStorage: columns by status
 * (status-columns.js: drag a card, or use its "Move…" button, to move the task) and the card
 * grid. Live changes move cards between columns as they happen.
 * @module board
 */

import { ApiError, api, query } from './api.js';
import { STATUS_OF_EVENT } from './format.js';
import { $of, h, setAttr, setText } from './dom.js';
import { FrameScheduler } from './frame.js';
import { LiveSocket } from './live-socket.js';
import { TaskCard } from './task-card.js';
import { Checklist } from './checklist.js';
import { StatusColumns } from './status-columns.js';

/** Tasks fetched per load (newest first). */
const PAGE_SIZE = 200;
/** What creating a task needs, and how its refusal is said. */
const CREATE = { action: 'edit_tasks', what: 'create tasks' };
/** Where the chosen view is remembered. */
const VIEW_KEY = 'taskline.board-view';

/** @typedef {'columns'|'grid'} BoardView */

/**
 * The view chosen last time (columns unless the grid was).
 * @returns {BoardView}
 */
export function storedView() {
  try {
    return localStorage.getItem(VIEW_KEY) === 'grid' ? 'grid' : 'columns';
  } catch {
    return 'columns';
  }
}

/** @typedef {import('./live-socket.js').Envelope} Envelope */
/** @typedef {import('./types.js').Task & {lastActivity: string}} BoardTask a task and when it last changed */

/**
 * @typedef {object} BoardElements the elements of the board view (see app.js)
 * @property {HTMLElement} list
 * @property {HTMLElement} count
 * @property {HTMLElement} empty
 * @property {HTMLFormElement} filters
 * @property {HTMLInputElement} search
 * @property {HTMLSelectElement} status
 * @property {HTMLSelectElement} agent
 * @property {HTMLSelectElement} tag
 * @property {HTMLFormElement} createForm
 * @property {HTMLElement} createNote
 * @property {HTMLInputElement} newTitle
 * @property {HTMLSelectElement} newPriority
 * @property {HTMLInputElement} newTags
 * @property {HTMLElement} columns the column view's container
 * @property {HTMLElement} moveStatus says how the last move went
 * @property {HTMLButtonElement} viewColumns
 * @property {HTMLButtonElement} viewGrid
 */

export class Board {
  /**
   * @param {BoardElements} el
   * @param {{agents: import('./agents.js').AgentDirectory,
   *   status: import('./connection-status.js').ConnectionStatus,
   *   notices: import('./notices.js').Notices,
   *   session: import('./session.js').Session,
   *   onDenied: (code: number, reason: string) => void,
   *   onEvents?: (events: Envelope[]) => void,
   *   onEstablished?: () => void}} services `onEvents` is told of every event of the board
   *   stream (the inbox follows requests there), `onEstablished` of each (re)connection
   */
  constructor(el, services) {
    this.el = el;
    this.agents = services.agents;
    this.status = services.status;
    this.notices = services.notices;
    this.session = services.session;
    /** @type {ReturnType<typeof setInterval>[]} */
    this.timers = [];
    /** @type {Map<string, BoardTask>} */
    this.tasks = new Map();
    /** @type {Map<string, TaskCard>} */
    this.cards = new Map();
    /** @type {Set<string>} tasks whose card must be updated */
    this.dirty = new Set();
    this.reorder = true;
    this.total = 0;
    /** @type {Envelope[]} events waiting for the next frame; while a load runs they wait for it */
    this.pending = [];
    this.loading = false;
    this.loadToken = 0;
    this.frame = new FrameScheduler(() => this.flush());
    /** @type {BoardView} */
    this.view = storedView();
    this.columns = new StatusColumns(
      { root: el.columns, status: el.moveStatus },
      {
        task: (id) => this.tasks.get(id),
        session: this.session,
        notices: this.notices,
        onMoved: (task) => this.accept(task),
        onRefused: (id) => this.refetch(id),
      },
    );
    this.socket = new LiveSocket({
      path: '/ws/board',
      onEvents: (events) => {
        services.onEvents?.(events);
        // the server dropped board events while this page was behind: fetch the list again
        if (events.some((event) => event.event_type === 'gap')) {
          this.reload();
          return;
        }
        this.pending.push(...events);
        if (!this.loading) this.frame.schedule();
      },
      onEstablished: () => {
        this.reload();
        services.onEstablished?.();
      },
      onState: () => this.status.render(),
      onDenied: services.onDenied,
    });
    this.wireForms();
    this.showView();
    this.session.subscribe(() => this.applyAccess());
    this.applyAccess();
    this.agents.subscribe(() => {
      this.fillAgentFilter();
      for (const id of this.tasks.keys()) this.dirty.add(id);
      this.frame.schedule();
    });
  }

  /** Connect and keep the board live (until `stop()`). */
  start() {
    if (this.timers.length) return;
    this.status.track('board', this.socket);
    this.socket.start();
    // "5 min ago" ages without events; agents come and go without task events
    this.timers = [
      setInterval(() => {
        for (const [id, card] of this.cards) {
          const task = this.tasks.get(id);
          if (task) card.touch(task);
        }
      }, 15_000),
      setInterval(() => this.loadAgents(), 30_000),
    ];
  }

  /** Disconnect and forget every task shown (signed out: nothing of it stays in the page). */
  stop() {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.socket.stop();
    // the next person gets a client id of their own (ids are bound to who first used them)
    this.socket.renewClientId();
    this.status.untrack('board');
    this.loadToken += 1;
    this.loading = false;
    this.pending = [];
    this.frame.cancel();
    this.tasks.clear();
    this.total = 0;
    this.dirty.clear();
    for (const card of this.cards.values()) card.element.remove();
    this.cards.clear();
    this.columns.arrange([]);
    this.agents.clear();
    setText(this.el.count, '');
    this.el.empty.hidden = true;
  }

  /** Enable the create form, or disable it with the reason, as the signed-in role allows. */
  applyAccess() {
    const reason = this.session.denial(CREATE.action, CREATE.what);
    const form = this.el.createForm;
    for (const control of form.querySelectorAll('input, select, button')) {
      /** @type {HTMLInputElement} */ (control).disabled = Boolean(reason);
    }
    const button = $of('button[type="submit"]', HTMLButtonElement, form);
    setAttr(button, 'title', reason);
    setText(this.el.createNote, reason ? `${reason}.` : '');
    this.el.createNote.hidden = !reason;
    this.columns.refreshMenus();
  }

  /** @returns {{status: string, agent: string, tag: string, q: string}} */
  filters() {
    return {
      status: this.el.status.value,
      agent: this.el.agent.value,
      tag: this.el.tag.value,
      q: this.el.search.value.trim(),
    };
  }

  /**
   * Whether a task passes the filters (the same rules as the server's list query).
   * @param {BoardTask} task
   * @returns {boolean}
   */
  matches(task) {
    const f = this.filters();
    if (f.status && task.status !== f.status) return false;
    if (f.agent && task.assigned_agent_id !== f.agent) return false;
    if (f.tag && !(task.tags ?? []).includes(f.tag)) return false;
    if (f.q) {
      const needle = f.q.toLowerCase();
      if (!`${task.title}\n${task.description ?? ''}`.toLowerCase().includes(needle)) return false;
    }
    return true;
  }

  /** Fetch the (filtered) list again; live events meanwhile are held and replayed after. */
  async reload() {
    const token = ++this.loadToken;
    this.loading = true;
    const f = this.filters();
    // agents load alongside, so the first render already shows their names
    const agentsLoaded = this.loadAgents();
    try {
      /** @type {{items: import('./types.js').Task[], total: number}} */
      const page = await api(`/api/v1/tasks/${query({ ...f, limit: PAGE_SIZE, sort: '-created_at' })}`);
      await agentsLoaded;
      if (token !== this.loadToken) return;
      this.tasks = new Map(page.items.map((task) => [task.id, { ...task, lastActivity: task.updated_at }]));
      this.total = page.total;
      this.dirty = new Set(this.tasks.keys());
      for (const id of this.cards.keys()) this.dirty.add(id);
      this.reorder = true;
      const held = this.pending;
      this.pending = held.filter((event) => this.isNewer(event));
    } catch (error) {
      if (token === this.loadToken) this.notices.error('Could not load the tasks', error);
    } finally {
      if (token === this.loadToken) {
        this.loading = false;
        this.frame.schedule();
      }
    }
  }

  /** Reload the agents (names, statuses); errors are shown. */
  async loadAgents() {
    try {
      await this.agents.load();
    } catch (error) {
      this.notices.error('Could not load the agents', error);
    }
  }

  /**
   * Whether a held event says something the fetched list does not know yet.
   * @private
   * @param {Envelope} event
   */
  isNewer(event) {
    const task = event.task_id === null ? undefined : this.tasks.get(event.task_id);
    if (!task || event.event_type === 'task_deleted') return true;
    return new Date(event.timestamp) > new Date(task.updated_at);
  }

  /** @private Apply the pending events and update the cards: once per frame. */
  flush() {
    if (this.loading) return;
    const events = this.pending;
    this.pending = [];
    for (const event of events) this.apply(event);
    this.render();
  }

  /**
   * @private
   * @param {Envelope} event
   */
  apply(event) {
    const type = event.event_type;
    const d = event.data || {};
    if (type === 'agent_status_change') this.agents.applyStatus(event);
    if (!event.task_id) return;
    const id = event.task_id;
    if (type === 'task_deleted') {
      if (this.tasks.delete(id)) this.total -= 1;
      this.dirty.add(id);
      this.reorder = true;
      return;
    }
    if ((type === 'task_created' || type === 'task_updated') && d.task) {
      if (!this.tasks.has(id)) {
        this.reorder = true;
        if (type === 'task_created') this.total += 1;
      }
      this.tasks.set(id, { ...d.task, lastActivity: event.timestamp });
      this.dirty.add(id);
      return;
    }
    const task = this.tasks.get(id);
    if (!task) return;
    task.lastActivity = event.timestamp;
    // an event that says whether the task waits for a person moves it in or out of "needs input"
    if (typeof d.needs_input === 'boolean') task.needs_input = d.needs_input;
    const status = STATUS_OF_EVENT[type];
    if (status) {
      task.status = status;
      if (task.status === 'completed') task.progress = 1;
    } else if (type === 'progress_update') {
      task.progress = d.progress;
      if (d.confidence !== null && d.confidence !== undefined) task.confidence = d.confidence;
    } else if (type === 'confidence_update') {
      task.confidence = d.confidence;
    } else if (type === 'subtask_updated' && typeof d.subtask_id === 'string') {
      Checklist.applyUpdate(task.sections ?? [], { subtask_id: d.subtask_id, done: d.done, title: d.title });
    }
    this.dirty.add(id);
  }

  /**
   * Show a task as the server answered it (after a move made here).
   * @param {import('./types.js').Task} task
   */
  accept(task) {
    const known = this.tasks.get(task.id);
    if (known && new Date(task.updated_at) < new Date(known.updated_at)) return;
    this.tasks.set(task.id, { ...task, lastActivity: task.updated_at });
    this.dirty.add(task.id);
    this.frame.schedule();
  }

  /**
   * Fetch one task again (a move was refused: show it where the server has it).
   * @param {string} id
   */
  async refetch(id) {
    try {
      /** @type {import('./types.js').Task} */
      const task = await api(`/api/v1/tasks/${encodeURIComponent(id)}`);
      this.accept(task);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        if (this.tasks.delete(id)) this.total -= 1;
        this.dirty.add(id);
        this.frame.schedule();
      } else this.notices.error('Could not reload the task', error);
    }
  }

  /**
   * Switch between the column view and the card grid (and remember the choice).
   * @param {BoardView} view
   */
  setView(view) {
    if (view === this.view) return;
    this.view = view;
    try {
      localStorage.setItem(VIEW_KEY, view);
    } catch {
      /* private mode: the choice lasts for this page only */
    }
    this.showView();
  }

  /** @private Show the chosen view, its cards in their places. */
  showView() {
    const columns = this.view === 'columns';
    this.el.columns.hidden = !columns;
    this.el.list.hidden = columns;
    this.el.viewColumns.setAttribute('aria-pressed', String(columns));
    this.el.viewGrid.setAttribute('aria-pressed', String(!columns));
    for (const card of this.cards.values()) card.setMovable(columns);
    this.order();
  }

  /** @private */
  render() {
    for (const id of this.dirty) {
      const task = this.tasks.get(id);
      const card = this.cards.get(id);
      if (!task || !this.matches(task)) {
        if (card) {
          card.element.remove();
          this.cards.delete(id);
        }
        continue;
      }
      if (!card) {
        const fresh = new TaskCard(id);
        fresh.setMovable(this.view === 'columns');
        this.cards.set(id, fresh);
        this.reorder = true;
        fresh.update(task, this.agents);
      } else card.update(task, this.agents);
    }
    this.dirty.clear();
    // in columns a change of status moves a card: place them after every change
    if (this.reorder || this.view === 'columns') this.order();
    this.fillTagFilter();
    const shown = this.cards.size;
    this.el.empty.hidden = shown > 0;
    const more = this.total > this.tasks.size ? ` (newest ${this.tasks.size} of ${this.total} loaded)` : '';
    setText(this.el.count, `${shown} ${shown === 1 ? 'task' : 'tasks'}${more}`);
  }

  /** @private Put the cards in newest-first order (in their columns, or in the grid),
   * moving only those out of place. */
  order() {
    /** @type {(id: string) => string} */
    const created = (id) => this.tasks.get(id)?.created_at ?? '';
    const sorted = [...this.cards].sort(([a], [b]) => created(b).localeCompare(created(a)));
    this.reorder = false;
    if (this.view === 'columns') {
      this.columns.arrange(sorted);
      return;
    }
    const list = this.el.list;
    sorted.forEach(([, card], index) => {
      const element = card.element;
      if (list.children[index] !== element) list.insertBefore(element, list.children[index] ?? null);
    });
  }

  /** @private Tag filter options: every tag on a loaded task. */
  fillTagFilter() {
    /** @type {Set<string>} */
    const tags = new Set();
    for (const task of this.tasks.values()) for (const tag of task.tags ?? []) tags.add(tag);
    const current = this.el.tag.value;
    if (current) tags.add(current);
    const wanted = ['', ...[...tags].sort()];
    const have = [...this.el.tag.options].map((o) => o.value);
    if (wanted.join('\u0000') === have.join('\u0000')) return;
    this.el.tag.replaceChildren(...wanted.map((tag) => h('option', { value: tag }, tag || 'Any')));
    this.el.tag.value = current;
  }

  /** @private Agent filter options: every known agent. */
  fillAgentFilter() {
    const current = this.el.agent.value;
    const agents = [...this.agents.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
    const wanted = ['', ...agents.map((a) => a.id)];
    if (current && !wanted.includes(current)) wanted.push(current);
    const have = [...this.el.agent.options].map((o) => o.value);
    if (wanted.join('\u0000') === have.join('\u0000')) return;
    this.el.agent.replaceChildren(
      ...wanted.map((id) => h('option', { value: id }, id ? this.agents.name(id) : 'Any')),
    );
    this.el.agent.value = current;
  }

  /** @private */
  wireForms() {
    /** @type {ReturnType<typeof setTimeout>|undefined} */
    let searchTimer;
    this.el.filters.addEventListener('submit', (event) => event.preventDefault());
    this.el.viewColumns.addEventListener('click', () => this.setView('columns'));
    this.el.viewGrid.addEventListener('click', () => this.setView('grid'));
    for (const select of [this.el.status, this.el.agent, this.el.tag]) {
      select.addEventListener('change', () => this.reload());
    }
    this.el.search.addEventListener('input', () => {
      clearTimeout(searchTimer);
      searchTimer = setTimeout(() => this.reload(), 250);
    });
    this.el.createForm.addEventListener('submit', (event) => {
      event.preventDefault();
      this.create();
    });
  }

  /** @private Create a task from the form. */
  async create() {
    const title = this.el.newTitle.value.trim();
    if (!title) {
      this.el.newTitle.setAttribute('aria-invalid', 'true');
      this.notices.error('Could not create the task', 'give it a title');
      this.el.newTitle.focus();
      return;
    }
    this.el.newTitle.removeAttribute('aria-invalid');
    const tags = this.el.newTags.value.split(',').map((t) => t.trim()).filter(Boolean);
    const button = $of('button[type="submit"]', HTMLButtonElement, this.el.createForm);
    button.disabled = true;
    try {
      /** @type {import('./types.js').Task} */
      const task = await api('/api/v1/tasks/', {
        method: 'POST',
        body: { title, priority: this.el.newPriority.value, tags },
      });
      this.el.newTitle.value = '';
      this.el.newTags.value = '';
      if (!this.loading && !this.tasks.has(task.id)) {
        // show it now; the board stream's task_created for it changes nothing more
        this.tasks.set(task.id, { ...task, lastActivity: task.updated_at });
        this.total += 1;
        this.dirty.add(task.id);
        this.reorder = true;
        this.frame.schedule();
      }
      this.notices.info(`Created “${task.title}”.`);
    } catch (error) {
      this.notices.error('Could not create the task', error);
    } finally {
      button.disabled = !this.session.may(CREATE.action);
      this.el.newTitle.focus();
    }
  }
}
