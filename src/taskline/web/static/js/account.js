/**
 * The person signed in, in the top bar: name, role and a "Sign out" button. Nothing shows
 * while nobody is signed in, or when the server does not check who asks (`auth: false`:
 * there is nobody to sign out).
 * @module account
 */

import { setAttr, setText } from './dom.js';

export class AccountBadge {
  /**
   * @param {{root: HTMLElement, name: HTMLElement, role: HTMLElement, signOut: HTMLButtonElement}} elements
   * @param {import('./session.js').Session} session
   * @param {{onSignOut: () => Promise<void>}} hooks
   */
  constructor(elements, session, hooks) {
    this.el = elements;
    this.session = session;
    elements.signOut.addEventListener('click', async () => {
      elements.signOut.disabled = true;
      try {
        await hooks.onSignOut();
      } finally {
        elements.signOut.disabled = false;
      }
    });
    session.subscribe(() => this.render());
    this.render();
  }

  render() {
    const me = this.session.me;
    const shown = Boolean(me && me.auth);
    this.el.root.hidden = !shown;
    if (!me || !shown) return;
    const name = me.name ?? me.actor;
    setText(this.el.name, name);
    setText(this.el.role, me.role ?? 'no role');
    setAttr(this.el.role, 'data-role', me.role);
    setAttr(this.el.root, 'title', `Signed in as ${me.actor} (${me.role ?? 'no role'})`);
  }
}
