/**
 * Who is using the page, and what they may do.
 *
 * `GET /api/v1/auth/me` names the principal (`person:ana`), their role and the `actions` the
 * role allows (`edit_tasks`, `control`, `post_messages`, … as in
 * `taskline.domain.access.Action`); a 401 means nobody is signed in. `POST` and `DELETE` on
 * `/api/v1/auth/session` sign the browser in and out (the session cookie is `HttpOnly`: the
 * page never sees it). A server that does not check who asks answers `auth: false` and an
 * anonymous admin.
 *
 * The controls the role may not use are disabled with a sentence saying why
 * ({@link denial}); the server decides in the end (its 403 is shown as a message).
 * @module session
 */

import { ApiError, api } from './api.js';

/**
 * @typedef {object} Me
 * @property {string} actor as recorded on events: `person:ana`, `anonymous`, …
 * @property {string} kind `person`, `agent`, `token`, `anonymous`
 * @property {string|null} name
 * @property {string|null} role `admin`, `member`, `agent`, `viewer`
 * @property {string[]} actions what this principal may do
 * @property {boolean} auth false when the server does not check who asks
 */

/**
 * Who a role's refusals are said of.
 * @type {Readonly<Record<string, string>>}
 */
const ROLE_PLURALS = Object.freeze({ admin: 'Admins', member: 'Members', agent: 'Agents', viewer: 'Viewers' });

/**
 * Whether `me` may do `action`; with nobody known yet, yes (the server decides).
 * @param {Me|null} me
 * @param {string} action
 * @returns {boolean}
 */
export function may(me, action) {
  return !me || (Array.isArray(me.actions) && me.actions.includes(action));
}

/**
 * "Viewers cannot pause tasks": what `me` cannot do, said of their role.
 * @param {Me|null} me
 * @param {string} what e.g. "pause tasks"
 * @returns {string}
 */
export function cannot(me, what) {
  const who = (me?.role && ROLE_PLURALS[me.role]) || (me?.role ? `The ${me.role} role` : 'You');
  return `${who} cannot ${what}`;
}

/**
 * Why `me` may not do `action` (see {@link cannot}), or `null` when they may.
 * @param {Me|null} me
 * @param {string} action
 * @param {string} what
 * @returns {string|null}
 */
export function denial(me, action, what) {
  return may(me, action) ? null : cannot(me, what);
}

/**
 * `['start', 'pause', 'cancel']` → "start, pause or cancel".
 * @param {string[]} words
 * @returns {string}
 */
export function orList(words) {
  if (words.length < 2) return words.join('');
  return `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

export class Session {
  constructor() {
    /** @type {Me|null} who is signed in (`null`: nobody, or not known yet) */
    this.me = null;
    /** @type {Set<(me: Me|null) => void>} */
    this.listeners = new Set();
    /** @type {Promise<void>|null} the reload under way */
    this.refreshing = null;
  }

  /**
   * Ask the server who this page is signed in as.
   * @returns {Promise<Me|null>} `null` when nobody is (401)
   * @throws {import('./api.js').ApiError} any other failure (server unreachable, 5xx)
   */
  async load() {
    try {
      this.set(await api('/api/v1/auth/me'));
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) throw error;
      this.set(null);
    }
    return this.me;
  }

  /** Load again (after a 403: the role may have changed); calls made meanwhile share it. */
  refresh() {
    this.refreshing ??= this.load()
      .then(
        () => undefined,
        (error) => console.warn('could not reload who is signed in', error),
      )
      .finally(() => {
        this.refreshing = null;
      });
    return this.refreshing;
  }

  /**
   * Sign in with a name and password.
   * @param {string} username
   * @param {string} password
   * @returns {Promise<Me>}
   * @throws {import('./api.js').ApiError} 401 with the server's reason for a wrong password
   */
  async signIn(username, password) {
    const me = await api('/api/v1/auth/session', { method: 'POST', body: { username, password } });
    this.set(me);
    return me;
  }

  /** Sign out: the server revokes the session and clears the cookie. */
  async signOut() {
    await api('/api/v1/auth/session', { method: 'DELETE' });
    this.set(null);
  }

  /** The session is gone (a 401 elsewhere): nobody is signed in any more. */
  forget() {
    this.set(null);
  }

  /** @returns {boolean} whether the server checks who asks (and so signing out means something) */
  get checksWhoAsks() {
    return Boolean(this.me?.auth);
  }

  /**
   * @param {string} action
   * @returns {boolean}
   */
  may(action) {
    return may(this.me, action);
  }

  /**
   * @param {string} action
   * @param {string} what
   * @returns {string|null}
   */
  denial(action, what) {
    return denial(this.me, action, what);
  }

  /**
   * @param {string} what
   * @returns {string}
   */
  cannot(what) {
    return cannot(this.me, what);
  }

  /** @param {(me: Me|null) => void} listener called after each change of who is signed in */
  subscribe(listener) {
    this.listeners.add(listener);
  }

  /**
   * @private
   * @param {Me|null} me
   */
  set(me) {
    const before = JSON.stringify(this.me);
    this.me = me;
    if (JSON.stringify(me) === before) return;
    for (const listener of this.listeners) listener(me);
  }
}
