/**
 * Messages to the person using the page: errors stay until dismissed (they are never
 * swallowed), information fades after a few seconds. The container is a live region, so
 * screen readers announce each one. A 401 is not shown here: the sign-in view says it (the
 * app shows it for every 401, see api.js `onAuthProblem`); a 403 is, with the server's reason.
 * @module notices
 */

import { ApiError } from './api.js';
import { h } from './dom.js';

const MAX_SHOWN = 5;
const INFO_MS = 5000;

export class Notices {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
  }

  /**
   * Show an error. `context` says what was being done ("Could not save the title").
   * @param {string} context
   * @param {unknown} error an Error (its message is shown) or a string
   */
  error(context, error) {
    if (error instanceof ApiError && error.status === 401) {
      console.warn(context, error.message);
      return;
    }
    const reason = error instanceof Error ? error.message : String(error ?? '');
    console.error(context, error);
    this.show('error', reason ? `${context}: ${reason}` : context);
  }

  /**
   * Show a passing piece of information.
   * @param {string} text
   */
  info(text) {
    const notice = this.show('info', text);
    setTimeout(() => notice.remove(), INFO_MS);
  }

  /**
   * @param {'error'|'info'} kind
   * @param {string} text
   * @returns {HTMLElement}
   */
  show(kind, text) {
    const notice = h(
      'div',
      { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
      h('p', {}, text),
      h('button', {
        type: 'button',
        class: 'icon-button',
        'aria-label': 'Dismiss this message',
        onclick: () => notice.remove(),
      }, '×'),
    );
    this.container.append(notice);
    while (this.container.children.length > MAX_SHOWN) this.container.firstElementChild?.remove();
    return notice;
  }
}
