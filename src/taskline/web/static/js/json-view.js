/**
 * A readable, collapsible view of a JSON document: objects and arrays are `<details>`
 * elements (keyboard operable, announced as expandable), leaves are typed and coloured.
 * Which nodes are open is remembered by JSON Pointer, so re-rendering after a patch keeps
 * what the person opened or closed.
 * @module json-view
 */

import { h } from './dom.js';

/** Nodes deeper than this start closed. */
const OPEN_DEPTH = 2;
/** Children shown per object or array before "… N more". */
const MAX_CHILDREN = 200;

export class JsonView {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    /** @type {Map<string, boolean>} JSON Pointer → open, for nodes the person toggled */
    this.toggled = new Map();
    // `toggle` does not bubble: listen while it goes down (capture).
    container.addEventListener(
      'toggle',
      (event) => {
        const node = /** @type {HTMLDetailsElement} */ (event.target);
        if (!node.dataset || node.dataset.path === undefined) return;
        // a toggle also fires for the `open` we rendered with: record only real changes
        const rendered = node.dataset.open === '1';
        if (node.open !== rendered) {
          node.dataset.open = node.open ? '1' : '0';
          this.toggled.set(node.dataset.path, node.open);
        }
      },
      true,
    );
  }

  /**
   * Show `value` (replacing what was shown).
   * @param {any} value
   */
  render(value) {
    this.container.replaceChildren(this.node(value, '', 'state', 0));
  }

  /**
   * @private
   * @param {any} value
   * @param {string} path JSON Pointer of `value`
   * @param {string} label key or index
   * @param {number} depth
   * @returns {HTMLElement}
   */
  node(value, path, label, depth) {
    if (value !== null && typeof value === 'object') {
      const isArray = Array.isArray(value);
      const keys = isArray ? value.map((_, i) => String(i)) : Object.keys(value);
      const open = this.toggled.get(path) ?? depth < OPEN_DEPTH;
      const summary = isArray ? `[${keys.length}]` : `{${keys.length}}`;
      const children = keys.slice(0, MAX_CHILDREN).map((key) =>
        h('li', {}, this.node(value[key], `${path}/${escapeToken(key)}`, key, depth + 1)),
      );
      if (keys.length > MAX_CHILDREN) {
        children.push(h('li', { class: 'muted' }, `… ${keys.length - MAX_CHILDREN} more`));
      }
      return h(
        'details',
        { open, dataset: { path, open: open ? '1' : '0' } },
        h('summary', {}, h('span', { class: 'json-key' }, label), ' ', h('span', { class: 'json-meta' }, summary)),
        keys.length ? h('ul', { class: 'json-children' }, children) : null,
      );
    }
    return h(
      'div',
      { class: 'json-leaf' },
      h('span', { class: 'json-key' }, label),
      ': ',
      leaf(value),
    );
  }
}

/**
 * @param {string} key
 * @returns {string} the key escaped as a JSON Pointer token
 */
function escapeToken(key) {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * @param {any} value a JSON scalar
 * @returns {HTMLElement}
 */
function leaf(value) {
  if (value === null) return h('span', { class: 'json-null' }, 'null');
  if (typeof value === 'string') return h('span', { class: 'json-string' }, JSON.stringify(value));
  if (typeof value === 'number') return h('span', { class: 'json-number' }, String(value));
  if (typeof value === 'boolean') return h('span', { class: 'json-boolean' }, String(value));
  return h('span', {}, String(value));
}
