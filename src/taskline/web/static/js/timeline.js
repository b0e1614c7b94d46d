/**
 * The event timeline of the open task: newest last, filterable, with a capped number of
 * rows in the page (older rows leave the DOM; "Load earlier" brings back older events from
 * `GET /api/v1/tasks/{id}/events`). Each row carries `data-seq`, and each seq appears once,
 * and names who made the event (the envelope's `actor`: `person:ana`, `agent:agent_x`, …).
 *
 * Rendering is incremental: a frame that only adds events appends their rows; the oldest
 * rows are trimmed in chunks of {@link TRIM_CHUNK} (removing rows at the top moves every row,
 * which costs a repaint of the list: once per chunk, not every frame). A filter change or
 * older events rebuild the list. Rendering only writes (never reads layout); the box follows
 * the newest row by itself (follow.js) unless the person scrolled away.
 * @module timeline
 */

import { h, setText } from './dom.js';
import { clockTime } from './format.js';
import { groupOf, summarize } from './event-summary.js';

/** Rows kept in the page by default. */
export const VISIBLE_ROWS = 300;
/** Events kept in memory beyond the rows shown (for filtering without refetching). */
const EXTRA_KEPT = 1500;
/** Events fetched per "Load earlier". */
const PAGE = 200;
/** Rows beyond the cap that may pile up before the oldest are trimmed at once. */
export const TRIM_CHUNK = 100;

/**
 * @typedef {import('./live-socket.js').Envelope} Envelope
 * @typedef {Envelope & {seq: number}} TaskEvent an event of the task's log (it has a seq)
 */

/**
 * Whether an event is one of the task's log (connection messages have no seq).
 * @param {Envelope} event
 * @returns {event is TaskEvent}
 */
function isTaskEvent(event) {
  return typeof event.seq === 'number';
}

export class Timeline {
  /**
   * @param {{list: HTMLOListElement, group: HTMLSelectElement,
   *   text: HTMLInputElement, earlier: HTMLButtonElement, trimmed: HTMLElement,
   *   count: HTMLElement}} elements
   * @param {{fetchPage: (since: number, limit: number) => Promise<{events: Envelope[], first_seq: number}>,
   *   onError: (context: string, error: unknown) => void}} hooks
   */
  constructor(elements, hooks) {
    this.el = elements;
    this.hooks = hooks;
    /** @type {TaskEvent[]} task events, ascending seq, unique */
    this.events = [];
    /** @type {WeakMap<Envelope, string>} each event's summary, made once */
    this.summaries = new WeakMap();
    this.visibleRows = VISIBLE_ROWS;
    /** Oldest seq the log still has (events before it were trimmed). */
    this.firstSeq = 1;
    this.renderedUpTo = 0;
    this.needsRebuild = true;
    this.loading = false;
    this.filter = { group: 'all', text: '' };
    elements.group.addEventListener('change', () => this.setFilter());
    elements.text.addEventListener('input', () => this.setFilter());
    elements.earlier.addEventListener('click', () => this.loadEarlier());
  }

  /** Forget everything (a different task, or a void cursor). */
  reset() {
    this.events = [];
    this.visibleRows = VISIBLE_ROWS;
    this.firstSeq = 1;
    this.renderedUpTo = 0;
    this.needsRebuild = true;
  }

  /** @returns {number} the newest seq held, 0 if none */
  get lastSeq() {
    return this.events.at(-1)?.seq ?? 0;
  }

  /**
   * Add task events (any order; duplicates by seq are ignored).
   * @param {Envelope[]} events
   */
  add(events) {
    for (const event of events) {
      if (!isTaskEvent(event)) continue;
      const last = this.lastSeq;
      if (event.seq > last) this.events.push(event);
      else this.insert(event);
    }
    const limit = this.visibleRows + EXTRA_KEPT;
    if (this.events.length > limit) this.events.splice(0, this.events.length - limit);
  }

  /**
   * Insert an older event in place (history, "load earlier").
   * @private
   * @param {TaskEvent} event
   */
  insert(event) {
    let low = 0;
    let high = this.events.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if ((this.events[mid]?.seq ?? 0) < event.seq) low = mid + 1;
      else high = mid;
    }
    if (this.events[low]?.seq === event.seq) return;
    this.events.splice(low, 0, event);
    this.needsRebuild = true;
  }

  /**
   * The log's oldest retained seq (from an events page or a `gap`).
   * @param {number} seq
   */
  setFirstSeq(seq) {
    this.firstSeq = Math.max(1, seq);
  }

  /** @private */
  setFilter() {
    this.filter = { group: this.el.group.value, text: this.el.text.value.trim().toLowerCase() };
    this.needsRebuild = true;
    this.render();
  }

  /**
   * @private
   * @param {Envelope} event
   * @returns {boolean}
   */
  matches(event) {
    const { group, text } = this.filter;
    if (group !== 'all' && groupOf(event) !== group) return false;
    if (text) {
      const haystack = `${event.event_type} ${this.summary(event)} ${event.actor ?? ''}`.toLowerCase();
      if (!haystack.includes(text)) return false;
    }
    return true;
  }

  /**
   * @private
   * @param {Envelope} event
   * @returns {string}
   */
  summary(event) {
    let text = this.summaries.get(event);
    if (text === undefined) {
      text = summarize(event);
      this.summaries.set(event, text);
    }
    return text;
  }

  /** Bring the rows in line with the events: append new ones, or rebuild. */
  render() {
    const { list } = this.el;
    if (this.needsRebuild) {
      const rows = [];
      for (let i = this.events.length - 1; i >= 0 && rows.length < this.visibleRows; i -= 1) {
        const event = this.events[i];
        if (event && this.matches(event)) rows.push(this.row(event));
      }
      list.replaceChildren(...rows.reverse());
      this.needsRebuild = false;
    } else {
      const fresh = document.createDocumentFragment();
      let start = this.events.length;
      while (start > 0 && (this.events[start - 1]?.seq ?? 0) > this.renderedUpTo) start -= 1;
      for (const event of this.events.slice(start)) {
        if (this.matches(event)) fresh.append(this.row(event));
      }
      list.append(fresh);
      if (list.childElementCount > this.visibleRows + TRIM_CHUNK) {
        let excess = list.childElementCount - this.visibleRows;
        while (excess-- > 0) list.firstElementChild?.remove();
      }
    }
    this.renderedUpTo = this.lastSeq;
    const oldest = this.events[0]?.seq ?? this.lastSeq + 1;
    const canLoad = oldest > this.firstSeq && this.lastSeq > 0;
    this.el.earlier.hidden = !canLoad;
    this.el.earlier.disabled = this.loading;
    this.el.trimmed.hidden = this.firstSeq <= 1 || canLoad;
    setText(this.el.trimmed, `Events before #${this.firstSeq} were trimmed from the log.`);
    setText(this.el.count, `(${list.childElementCount} shown, last #${this.lastSeq})`);
  }

  /**
   * @private
   * @param {TaskEvent} event
   * @returns {HTMLElement}
   */
  row(event) {
    return h(
      'li',
      { class: event.seq % 2 ? 'tl-odd' : null, dataset: { seq: event.seq, type: event.event_type, group: groupOf(event) } },
      h('span', { class: 'tl-seq' }, `#${event.seq}`),
      h('time', { datetime: event.timestamp, class: 'tl-time' }, clockTime(event.timestamp)),
      h('span', { class: 'tl-type' }, event.event_type),
      h('span', { class: 'tl-text' }, this.summary(event)),
      event.actor ? h('span', { class: 'tl-actor', title: `by ${event.actor}` }, event.actor) : null,
    );
  }

  /** Fetch the page of events before the oldest one held and show them. */
  async loadEarlier() {
    const oldest = this.events[0]?.seq;
    if (this.loading || oldest === undefined) return;
    const since = Math.max(this.firstSeq - 1, oldest - 1 - PAGE, 0);
    const limit = oldest - 1 - since;
    if (limit <= 0) return;
    this.loading = true;
    this.el.earlier.disabled = true;
    try {
      const page = await this.hooks.fetchPage(since, limit);
      this.setFirstSeq(page.first_seq);
      const older = page.events.filter((e) => isTaskEvent(e) && e.seq < oldest);
      this.add(older);
      // show everything held, down to the oldest event just loaded
      this.visibleRows = Math.max(this.visibleRows, this.events.length);
      this.needsRebuild = true;
    } catch (error) {
      this.hooks.onError('Could not load earlier events', error);
    } finally {
      this.loading = false;
      this.render();
    }
  }
}
