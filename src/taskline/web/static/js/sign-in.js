/**
 * The sign-in view: a user name and password form, shown when nobody is signed in (the
 * server answered 401). A wrong password shows the server's reason under the form; signing
 * in calls `onSignedIn` (the app then shows the board).
 * @module sign-in
 */

import { setAttr, setText } from './dom.js';

export class SignInView {
  /**
   * @param {{view: HTMLElement, form: HTMLFormElement, username: HTMLInputElement,
   *   password: HTMLInputElement, note: HTMLElement, error: HTMLElement}} elements
   * @param {import('./session.js').Session} session
   * @param {{onSignedIn: (me: import('./session.js').Me) => void}} hooks
   */
  constructor(elements, session, hooks) {
    this.el = elements;
    this.session = session;
    this.hooks = hooks;
    this.busy = false;
    elements.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  /** @returns {boolean} */
  get shown() {
    return !this.el.view.hidden;
  }

  /**
   * Show the form.
   * @param {string} [note] why it is shown ("Signed out.", "Your session has ended; …")
   */
  show(note = '') {
    setText(this.el.note, note);
    this.el.note.hidden = !note;
    this.showError('');
    this.el.password.value = '';
    this.el.view.hidden = false;
    document.title = 'Sign in — Taskline';
    (this.el.username.value ? this.el.password : this.el.username).focus();
  }

  hide() {
    this.el.view.hidden = true;
    this.el.password.value = '';
  }

  /** @private */
  async submit() {
    if (this.busy) return;
    const username = this.el.username.value.trim();
    const password = this.el.password.value;
    if (!username || !password) {
      this.showError(username ? 'Enter your password.' : 'Enter your user name.');
      (username ? this.el.password : this.el.username).focus();
      return;
    }
    this.busy = true;
    const button = /** @type {HTMLButtonElement} */ (this.el.form.querySelector('button[type="submit"]'));
    button.disabled = true;
    this.showError('');
    try {
      const me = await this.session.signIn(username, password);
      this.hide();
      this.hooks.onSignedIn(me);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.showError(`Could not sign in: ${reason}`);
      this.el.password.select();
      this.el.password.focus();
    } finally {
      this.busy = false;
      button.disabled = false;
    }
  }

  /**
   * @private
   * @param {string} message `''` hides it
   */
  showError(message) {
    setText(this.el.error, message);
    this.el.error.hidden = !message;
    for (const input of [this.el.username, this.el.password]) {
      setAttr(input, 'aria-invalid', message ? 'true' : null);
    }
  }
}
