/**
 * Taskline's web UI: wires the parts together and routes between the board (`#/`) and a
 * task's detail panel (`#/tasks/{id}`).
 * @module app
 */

import { $ } from './dom.js';
import { AgentDirectory, AgentsStrip } from './agents.js';
import { Board } from './board.js';
import { ConnectionStatus } from './connection-status.js';
import { TaskDetail } from './detail.js';
import { Notices } from './notices.js';
import { setUpThemeToggle } from './theme.js';
import { debug } from './debug.js';

const TASK_ROUTE = /^#\/tasks\/([^/?#]+)$/;

function main() {
  setUpThemeToggle(/** @type {HTMLButtonElement} */ ($('#theme-toggle')));
  const notices = new Notices($('#notices'));
  const status = new ConnectionStatus($('#connection'), /** @type {HTMLButtonElement} */ ($('#reconnect-now')));
  const agents = new AgentDirectory();
  new AgentsStrip({ list: $('#agents-list'), empty: $('#agents-empty') }, agents);

  const boardView = $('#board-view');
  const detailView = $('#detail-view');
  const board = new Board(
    {
      list: $('#task-list'),
      count: $('#board-count'),
      empty: $('#board-empty'),
      filters: $('#filters'),
      search: $('#filter-q'),
      status: $('#filter-status'),
      agent: $('#filter-agent'),
      tag: $('#filter-tag'),
      createForm: $('#create-form'),
      newTitle: $('#new-title'),
      newPriority: $('#new-priority'),
      newTags: $('#new-tags'),
    },
    { agents, status, notices },
  );
  const detail = new TaskDetail(detailView, { agents, status, notices });
  debug.app = { board, detail, status, agents };

  let openTaskId = null;
  const route = () => {
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
      const back = openTaskId && document.querySelector(`#task-list a[href="#/tasks/${CSS.escape(encodeURIComponent(openTaskId))}"]`);
      if (back) /** @type {HTMLElement} */ (back).focus();
      openTaskId = null;
    }
  };
  window.addEventListener('hashchange', route);
  document.addEventListener('keydown', (event) => {
    const target = /** @type {HTMLElement} */ (event.target);
    const typing = target.closest('input, textarea, select, [contenteditable]');
    if (event.key === 'Escape' && !detailView.hidden && !typing) location.hash = '#/';
  });
  board.start();
  route();
}

main();
