/**
 * Taskline's web UI: wires the parts together and routes between the board (`#/`) and a
 * task's detail panel (`#/tasks/{id}`).
 *
 * First it asks who is signed in (`/api/v1/auth/me`): nobody (401) shows the sign-in view;
 * anyone else (or everyone, when the server does not check who asks) gets the board. Any
 * later 401 — an API call, or a stream closed with 4401 — stops the streams and shows the
 * sign-in view again; a 403 reloads what the person may do (their role may have changed).
 * @module app
 */

import { $, $of } from './dom.js';
import { onAuthProblem } from './api.js';
import { AccountBadge } from './account.js';
import { AgentDirectory, AgentsStrip } from './agents.js';
import { Board } from './board.js';
import { ConnectionStatus } from './connection-status.js';
import { TaskDetail } from './detail.js';
import { Inbox } from './inbox.js';
import { CloseCode, backoffDelay } from './live-socket.js';
import { Notices } from './notices.js';
import { Session } from './session.js';
import { SignInView } from './sign-in.js';
import { setUpThemeToggle } from './theme.js';
import { WebhooksPanel } from './webhooks.js';
import { debug } from './debug.js';

const TASK_ROUTE = /^#\/tasks\/([^/?#]+)$/;

async function main() {
  setUpThemeToggle(/** @type {HTMLButtonElement} */ ($('#theme-toggle')));
  const notices = new Notices($('#notices'));
  const session = new Session();
  const status = new ConnectionStatus($('#connection'), /** @type {HTMLButtonElement} */ ($('#reconnect-now')));
  const agents = new AgentDirectory();
  new AgentsStrip({ list: $('#agents-list'), empty: $('#agents-empty') }, agents);
  new WebhooksPanel($('#webhooks'), { session, notices });

  /** A stream was refused: 4401 means the session is gone, 4403 that it may not be read. */
  /** @type {(code: number, reason: string) => void} */
  const onDenied = (code, reason) => {
    if (code === CloseCode.UNAUTHENTICATED) signInNeeded(`Your session has ended (${reason}); sign in again.`);
    else notices.error('The server refused the live updates', reason);
  };

  /** @type {Inbox|null} set just below (the board tells it of events; it asks the board for titles) */
  let inbox = null;
  const boardView = $('#board-view');
  const detailView = $('#detail-view');
  const board = new Board(
    {
      list: $('#task-list'),
      count: $('#board-count'),
      empty: $('#board-empty'),
      filters: $of('#filters', HTMLFormElement),
      search: $of('#filter-q', HTMLInputElement),
      status: $of('#filter-status', HTMLSelectElement),
      agent: $of('#filter-agent', HTMLSelectElement),
      tag: $of('#filter-tag', HTMLSelectElement),
      createForm: $of('#create-form', HTMLFormElement),
      createNote: $('#create-note'),
      newTitle: $of('#new-title', HTMLInputElement),
      newPriority: $of('#new-priority', HTMLSelectElement),
      newTags: $of('#new-tags', HTMLInputElement),
      columns: $('#task-columns'),
      moveStatus: $('#move-status'),
      viewColumns: $of('#view-columns', HTMLButtonElement),
      viewGrid: $of('#view-grid', HTMLButtonElement),
    },
    {
      agents,
      status,
      notices,
      session,
      onDenied,
      onEvents: (events) => inbox?.onEvents(events),
      onEstablished: () => inbox?.refresh(),
    },
  );
  inbox = new Inbox(
    {
      button: $of('#inbox-button', HTMLButtonElement),
      count: $('#inbox-count'),
      panel: $('#inbox'),
      list: $('#inbox-list'),
      empty: $('#inbox-empty'),
      note: $('#inbox-note'),
      notify: $of('#inbox-notify', HTMLButtonElement),
      notifyStatus: $('#inbox-notify-status'),
      close: $of('#inbox-close', HTMLButtonElement),
    },
    { session, notices, agents, taskTitle: (id) => board.tasks.get(id)?.title },
  );
  const detail = new TaskDetail(detailView, { agents, status, notices, session, onDenied });
  const signIn = new SignInView(
    {
      view: $('#sign-in-view'),
      form: /** @type {HTMLFormElement} */ ($('#sign-in-form')),
      username: /** @type {HTMLInputElement} */ ($('#sign-in-username')),
      password: /** @type {HTMLInputElement} */ ($('#sign-in-password')),
      note: $('#sign-in-note'),
      error: $('#sign-in-error'),
    },
    session,
    {
      onSignedIn: () => {
        enter();
        if (detailView.hidden) $('#main').focus();
      },
    },
  );
  new AccountBadge(
    {
      root: $('#account'),
      name: $('#account-name'),
      role: $('#account-role'),
      signOut: /** @type {HTMLButtonElement} */ ($('#sign-out')),
    },
    session,
    {
      onSignOut: async () => {
        try {
          await session.signOut();
        } catch (error) {
          notices.error('Could not sign out', error);
          return;
        }
        leave('Signed out.');
      },
    },
  );
  debug.app = { board, detail, inbox, status, agents, session };

  /** Whether the board and panels are shown (someone is signed in). */
  let inside = false;
  /** @type {string|null} the task whose panel is open */
  let openTaskId = null;
  const route = () => {
    if (!inside) return;
    const match = TASK_ROUTE.exec(location.hash);
    if (match) {
      openTaskId = decodeURIComponent(match[1]);
      boardView.hidden = true;
      detailView.hidden = false;
      detail.open(openTaskId);
      $('#detail-title').focus();
      window.scrollTo(0, 0);
    } else {
      detail.close();
      detailView.hidden = true;
      boardView.hidden = false;
      document.title = 'Taskline';
      // back on the board: put focus on the task the person came from
      const back = openTaskId && document.querySelector(`#board-view .task-card a[href="#/tasks/${CSS.escape(encodeURIComponent(openTaskId))}"]`);
      if (back) /** @type {HTMLElement} */ (back).focus();
      openTaskId = null;
    }
  };

  /** Someone is signed in: show the board (or the task the address names) and go live. */
  const enter = () => {
    if (inside) return;
    inside = true;
    signIn.hide();
    board.start();
    inbox?.start();
    route();
  };

  /**
   * Nobody is signed in: stop the streams, forget what was shown, ask to sign in.
   * @param {string} note why ("Signed out.", "Your session has ended; …")
   */
  const leave = (note) => {
    inside = false;
    detail.close();
    board.stop();
    inbox?.stop();
    boardView.hidden = true;
    detailView.hidden = true;
    openTaskId = null;
    signIn.show(note);
  };

  /** @param {string} note */
  const signInNeeded = (note) => {
    if (!inside) return; // the sign-in view is up already
    session.forget();
    leave(note);
  };

  onAuthProblem((error) => {
    if (error.status === 401) signInNeeded(`Your session has ended (${error.message}); sign in again.`);
    else {
      session.refresh().then(() => {
        if (!session.me) signInNeeded('Your session has ended; sign in again.');
      });
    }
  });
  window.addEventListener('hashchange', route);
  document.addEventListener('keydown', (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    const typing = target.closest('input, textarea, select, [contenteditable]');
    if (event.key === 'Escape' && inside && !detailView.hidden && !typing) location.hash = '#/';
  });

  // who is this? (retried while the server cannot be reached)
  for (let failures = 0; ; failures += 1) {
    try {
      const me = await session.load();
      if (me) enter();
      else leave('');
      return;
    } catch (error) {
      if (failures === 0) notices.error('Could not ask the server who you are (retrying)', error);
      await new Promise((resolve) => setTimeout(resolve, backoffDelay(failures + 1)));
    }
  }
}

main();
