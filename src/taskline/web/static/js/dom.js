/**
 * Tiny DOM helpers: build elements without innerHTML (so no markup injection), find them,
 * and change text only when it differs (no needless layout work).
 * @module dom
 */

/** Properties set as DOM properties rather than attributes. */
const PROPERTIES = new Set(['checked', 'disabled', 'value', 'hidden', 'open', 'indeterminate']);

/**
 * Create an element.
 * @param {string} tag
 * @param {Record<string, any>} [props] attributes; `class`, `dataset`, `on<event>` handlers,
 *   and a few properties (`checked`, `disabled`, `value`, `hidden`, `open`). `null`,
 *   `undefined` and `false` are skipped.
 * @param {...(Node|string|number|null|undefined|false|Array<any>)} children
 * @returns {HTMLElement}
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (PROPERTIES.has(key)) Reflect.set(el, key, value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/**
 * Append children (nested arrays allowed; strings become text nodes).
 * @param {Element} parent
 * @param {Array<any>} children
 */
export function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
}

/**
 * The element matching `selector`, or an error naming it (a missing element is a bug).
 * @param {string} selector
 * @param {ParentNode} [root]
 * @returns {HTMLElement}
 */
export function $(selector, root = document) {
  const el = root.querySelector(selector);
  if (!el) throw new Error(`element ${selector} is missing from the page`);
  return /** @type {HTMLElement} */ (el);
}

/**
 * The element matching `selector`, checked to be a `type` (an `HTMLInputElement`, …): a
 * missing element or one of another kind is a bug, and throws naming it.
 * @template {abstract new (...args: any) => Element} T
 * @param {string} selector
 * @param {T} type
 * @param {ParentNode} [root]
 * @returns {InstanceType<T>}
 */
export function $of(selector, type, root = document) {
  const el = $(selector, root);
  if (!(el instanceof type)) throw new Error(`element ${selector} is not a ${type.name}`);
  return /** @type {InstanceType<T>} */ (el);
}

/**
 * Set an element's text if it changed.
 * @param {Node} el
 * @param {string} text
 */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

/**
 * Set or remove an attribute if it changed.
 * @param {Element} el
 * @param {string} name
 * @param {string|null} value `null` removes it
 */
export function setAttr(el, name, value) {
  if (value === null) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

/**
 * Remove every child of an element.
 * @param {Element} el
 */
export function clear(el) {
  el.replaceChildren();
}
