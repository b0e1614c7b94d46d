/**
 * Tool-call cards: one per `tool_call_id`, built from `tool_call.start` (name, arguments),
 * `tool_call.args` (argument text streamed in pieces), `tool_call.end` (result or error,
 * duration) and `tool_call.result` (content returned to the agent). A card shows running
 * until its end arrives. Events may arrive for a call whose start is older than what was
 * loaded: the card is made from whatever is known.
 * @module tool-calls
 */

import { h, setAttr, setText } from './dom.js';
import { duration, prettyJson } from './format.js';

/** Cards kept in the page; the oldest leave in chunks of {@link TRIM_CHUNK} (removing the
 * top card moves every other one: once per chunk, not every frame). */
const MAX_CARDS = 50;
const TRIM_CHUNK = 25;

/**
 * @typedef {object} ToolCall
 * @property {string} id
 * @property {string} name
 * @property {any} args
 * @property {string} argsText streamed argument text (`tool_call.args`)
 * @property {any} result
 * @property {string|null} error
 * @property {'running'|'done'|'error'} status
 * @property {number|null} startedAt ms since the epoch
 * @property {number|null} durationMs
 * @property {ToolCardRefs|null} refs the card's elements, once rendered
 */

/**
 * @typedef {object} ToolCardRefs
 * @property {HTMLElement} card
 * @property {HTMLElement} name
 * @property {HTMLElement} status
 * @property {HTMLElement} duration
 * @property {HTMLElement} args
 * @property {HTMLElement} resultBlock
 * @property {HTMLElement} resultLabel
 * @property {HTMLElement} result
 */

export class ToolCalls {
  /**
   * @param {HTMLOListElement} list
   * @param {HTMLElement} empty shown while there is no card
   */
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
    /** @type {Map<string, ToolCall>} */
    this.calls = new Map();
    /** @type {Set<ToolCall>} */
    this.dirty = new Set();
  }

  reset() {
    this.calls.clear();
    this.dirty.clear();
    this.list.replaceChildren();
  }

  /**
   * @param {import('./live-socket.js').Envelope} event a `tool_call.*` event
   */
  apply(event) {
    const d = event.data || {};
    const call = this.call(d.tool_call_id);
    const at = new Date(event.timestamp).getTime();
    switch (event.event_type) {
      case 'tool_call.start':
        call.name = d.name || call.name;
        if (d.args !== undefined && d.args !== null) call.args = d.args;
        call.startedAt = at;
        break;
      case 'tool_call.args':
        call.argsText += d.delta ?? '';
        break;
      case 'tool_call.end':
        if (d.name) call.name = d.name;
        if (d.result !== undefined && d.result !== null) call.result = d.result;
        call.error = d.error || null;
        call.status = call.error ? 'error' : 'done';
        call.durationMs = d.duration_ms ?? (call.startedAt !== null ? at - call.startedAt : null);
        break;
      case 'tool_call.result':
        call.result = d.content;
        break;
      default:
        return;
    }
    this.dirty.add(call);
  }

  /**
   * @private
   * @param {string} id
   * @returns {ToolCall}
   */
  call(id) {
    let call = this.calls.get(id);
    if (!call) {
      call = {
        id, name: 'tool', args: undefined, argsText: '', result: undefined, error: null,
        status: 'running', startedAt: null, durationMs: null, refs: null,
      };
      this.calls.set(id, call);
    }
    return call;
  }

  /** Build or update the cards that changed since the last frame. */
  render() {
    for (const call of this.dirty) {
      if (!call.refs) this.build(call);
      this.update(call);
    }
    this.dirty.clear();
    if (this.calls.size > MAX_CARDS + TRIM_CHUNK) this.trim();
    this.empty.hidden = this.calls.size > 0;
  }

  /** @private Drop the oldest cards down to {@link MAX_CARDS}. */
  trim() {
    for (const [oldestId, oldest] of this.calls) {
      if (this.calls.size <= MAX_CARDS) break;
      oldest.refs?.card.remove();
      this.calls.delete(oldestId);
    }
  }

  /**
   * @private
   * @param {ToolCall} call
   */
  build(call) {
    const parts = {
      name: h('span', { class: 'tool-name' }),
      status: h('span', { class: 'status-badge' }),
      duration: h('span', { class: 'tool-duration muted' }),
      args: h('pre', { class: 'code' }),
      resultBlock: h('div', { class: 'tool-result', hidden: true }),
      resultLabel: h('h4', { class: 'minor-title' }),
      result: h('pre', { class: 'code' }),
    };
    parts.resultBlock.append(parts.resultLabel, parts.result);
    const card = h(
      'li',
      { class: 'tool-card', dataset: { toolCallId: call.id } },
      h('div', { class: 'tool-head' }, parts.name, parts.status, parts.duration),
      h('details', { class: 'tool-args' }, h('summary', {}, 'Arguments'), parts.args),
      parts.resultBlock,
    );
    /** @type {ToolCardRefs} */
    const refs = { ...parts, card };
    call.refs = refs;
    this.list.append(refs.card);
  }

  /**
   * @private
   * @param {ToolCall} call
   */
  update(call) {
    const r = call.refs;
    if (!r) return;
    setAttr(r.card, 'data-status', call.status);
    setText(r.name, call.name);
    setText(r.status, call.status === 'running' ? 'Running' : call.status === 'error' ? 'Failed' : 'Done');
    setAttr(r.status, 'data-status', call.status);
    setText(r.duration, duration(call.durationMs));
    const args = call.argsText || (call.args === undefined ? '' : prettyJson(call.args));
    setText(r.args, args || '(none)');
    if (call.error) {
      r.resultBlock.hidden = false;
      setText(r.resultLabel, 'Error');
      setText(r.result, call.error);
      r.result.classList.add('code-error');
    } else if (call.result !== undefined) {
      r.resultBlock.hidden = false;
      setText(r.resultLabel, 'Result');
      setText(r.result, prettyJson(call.result));
      r.result.classList.remove('code-error');
    }
  }
}
