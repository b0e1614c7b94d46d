/**
 * Agents: a directory the board and the detail panel share (names and statuses, from
 * `GET /api/v1/agents/` and kept current by `agent_status_change` events), and the strip on
 * the board that shows each agent's status live.
 * @module agents
 */

import { api } from './api.js';
import { h, setAttr, setText } from './dom.js';
import { AGENT_STATUS_LABELS, relativeTime } from './format.js';

/**
 * @typedef {object} Agent
 * @property {string} id
 * @property {string} name
 * @property {string} kind
 * @property {string} status
 * @property {string|null} current_task_id
 * @property {string|null} last_seen_at
 */

export class AgentDirectory {
  constructor() {
    /** @type {Map<string, Agent>} */
    this.agents = new Map();
    /** @type {Set<() => void>} */
    this.listeners = new Set();
    /** @type {Set<string>} ids being fetched */
    this.fetching = new Set();
  }

  /** Load every agent (replacing what was known). */
  async load() {
    /** @type {Agent[]} */
    const agents = await api('/api/v1/agents/');
    this.agents = new Map(agents.map((agent) => [agent.id, agent]));
    this.changed();
  }

  /** Forget every agent (signed out). */
  clear() {
    this.agents = new Map();
    this.changed();
  }

  /**
   * @param {string|null|undefined} id
   * @returns {Agent|undefined}
   */
  get(id) {
    return id ? this.agents.get(id) : undefined;
  }

  /**
   * A person-readable name for an agent id (the id itself when unknown).
   * @param {string|null|undefined} id
   * @returns {string}
   */
  name(id) {
    if (!id) return 'Unassigned';
    return this.agents.get(id)?.name ?? id;
  }

  /**
   * Fetch an agent we do not know yet (no-op for a known one).
   * @param {string} id
   */
  ensure(id) {
    if (this.agents.has(id) || this.fetching.has(id)) return;
    this.fetching.add(id);
    api(`/api/v1/agents/${encodeURIComponent(id)}`)
      .then((fetched) => {
        this.agents.set(fetched.id, fetched);
        this.changed();
      })
      .catch((error) => console.warn('could not fetch agent', id, error))
      .finally(() => this.fetching.delete(id));
  }

  /**
   * Apply an `agent_status_change` event. An agent we have not seen yet is fetched.
   * @param {import('./live-socket.js').Envelope} event
   */
  applyStatus(event) {
    const d = event.data || {};
    const agent = this.agents.get(d.agent_id);
    if (!agent) {
      this.ensure(d.agent_id);
      return;
    }
    agent.status = d.status;
    agent.last_seen_at = event.timestamp;
    if (d.status === 'working' && event.task_id) agent.current_task_id = event.task_id;
    this.changed();
  }

  /** @param {() => void} listener called after any change */
  subscribe(listener) {
    this.listeners.add(listener);
  }

  /** @private */
  changed() {
    for (const listener of this.listeners) listener();
  }
}

/** The row of agents on the board. */
export class AgentsStrip {
  /**
   * @param {{list: HTMLElement, empty: HTMLElement}} elements
   * @param {AgentDirectory} directory
   */
  constructor(elements, directory) {
    this.el = elements;
    this.directory = directory;
    /** @type {Map<string, {item: HTMLElement, status: HTMLElement, seen: HTMLElement}>} */
    this.items = new Map();
    directory.subscribe(() => this.render());
  }

  render() {
    const agents = [...this.directory.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
    const keep = new Set(agents.map((a) => a.id));
    for (const [id, refs] of this.items) {
      if (!keep.has(id)) {
        refs.item.remove();
        this.items.delete(id);
      }
    }
    agents.forEach((agent, index) => {
      let refs = this.items.get(agent.id);
      if (!refs) {
        refs = {
          status: h('span', { class: 'agent-status' }),
          seen: h('span', { class: 'muted agent-seen' }),
          item: h('li', { class: 'agent', dataset: { agentId: agent.id } }),
        };
        refs.item.append(
          h('span', { class: 'status-dot', 'aria-hidden': 'true' }),
          h('span', { class: 'agent-name' }, agent.name),
          refs.status,
          refs.seen,
        );
        this.items.set(agent.id, refs);
      }
      setAttr(refs.item, 'data-status', agent.status);
      setText(refs.status, AGENT_STATUS_LABELS[agent.status] ?? agent.status);
      setText(refs.seen, agent.last_seen_at ? `seen ${relativeTime(agent.last_seen_at)}` : agent.kind);
      if (this.el.list.children[index] !== refs.item) this.el.list.insertBefore(refs.item, this.el.list.children[index] ?? null);
    });
    this.el.empty.hidden = agents.length > 0;
  }
}
