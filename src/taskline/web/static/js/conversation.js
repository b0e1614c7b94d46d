/**
 * The conversation on a task: the agent's streamed messages (`message.start`, `.delta`,
 * `.end`: text appears as it is written) and the thread messages people post (logged as
 * `custom` events named `task_message`), in log order; plus the box to write to the agent
 * (disabled, with the reason, for a role that may not post messages).
 * @module conversation
 */

import { api } from './api.js';
import { $of, h, setAttr, setText } from './dom.js';
import { clockTime } from './format.js';

/** Messages kept in the page; the oldest leave in chunks of {@link TRIM_CHUNK}. */
const MAX_MESSAGES = 100;
const TRIM_CHUNK = 20;
/** What posting needs, and how its refusal is said. */
const POST = { action: 'post_messages', what: 'post messages' };

/**
 * @typedef {object} Said
 * @property {string} id
 * @property {string} who "assistant", "user", "system", or a person's name
 * @property {string} kind "agent" or "human"
 * @property {string} at ISO time
 * @property {string} pending text received since the last frame
 * @property {boolean} done
 * @property {{item: HTMLElement, node: Text}|null} refs
 */

export class Conversation {
  /**
   * @param {{list: HTMLOListElement, empty: HTMLElement, form: HTMLFormElement,
   *   text: HTMLTextAreaElement, status: HTMLElement, note: HTMLElement}} elements
   * @param {{taskId: () => string|null, onError: (context: string, error: unknown) => void,
   *   session: import('./session.js').Session}} hooks
   */
  constructor(elements, hooks) {
    this.el = elements;
    this.hooks = hooks;
    /** @type {Map<string, Said>} */
    this.messages = new Map();
    /** @type {Set<Said>} */
    this.dirty = new Set();
    elements.form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.send();
    });
    elements.text.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.send();
      }
    });
  }

  /** Enable the message box, or disable it with the reason, as the signed-in role allows. */
  applyAccess() {
    const refused = this.hooks.session.denial(POST.action, POST.what);
    const button = $of('button[type="submit"]', HTMLButtonElement, this.el.form);
    this.el.text.disabled = Boolean(refused);
    button.disabled = Boolean(refused);
    setAttr(button, 'title', refused);
    setAttr(this.el.text, 'title', refused);
    setText(this.el.note, refused ? `${refused}.` : '');
    this.el.note.hidden = !refused;
  }

  reset() {
    this.messages.clear();
    this.dirty.clear();
    this.el.list.replaceChildren();
    setText(this.el.status, '');
  }

  /**
   * @param {import('./live-socket.js').Envelope} event `message.*`, or `custom` `task_message`
   */
  apply(event) {
    const d = event.data || {};
    if (event.event_type === 'custom') {
      const value = d.value || {};
      const said = this.said(`thread-${value.id ?? event.id}`, value.author || 'someone', 'human', event.timestamp);
      said.pending += value.content ?? '';
      said.done = true;
      this.dirty.add(said);
      return;
    }
    const said = this.said(d.message_id, d.role || 'assistant', 'agent', event.timestamp);
    if (event.event_type === 'message.start' && d.role) said.who = d.role;
    if (event.event_type === 'message.delta') said.pending += d.delta ?? '';
    if (event.event_type === 'message.end') said.done = true;
    this.dirty.add(said);
  }

  /**
   * @private
   * @param {string} id
   * @param {string} who
   * @param {string} kind
   * @param {string} at
   * @returns {Said}
   */
  said(id, who, kind, at) {
    let said = this.messages.get(id);
    if (!said) {
      said = { id, who, kind, at, pending: '', done: false, refs: null };
      this.messages.set(id, said);
    }
    return said;
  }

  /** Append the text that arrived since the last frame (one text node per message). */
  render() {
    for (const said of this.dirty) {
      if (!said.refs) {
        const node = document.createTextNode('');
        const text = h('p', { class: 'said-text' }, node);
        const item = h(
          'li',
          { class: `said said-${said.kind}`, dataset: { messageId: said.id } },
          h('div', { class: 'said-head' },
            h('span', { class: 'said-who' }, said.kind === 'agent' ? `Agent (${said.who})` : said.who),
            h('time', { datetime: said.at, class: 'muted' }, clockTime(said.at))),
          text,
        );
        said.refs = { item, node };
        this.el.list.append(item);
      }
      if (said.pending) {
        said.refs.node.appendData(said.pending);
        said.pending = '';
      }
      setAttr(said.refs.item, 'data-done', said.done ? 'true' : 'false');
      setAttr(said.refs.item, 'aria-busy', said.done ? null : 'true');
    }
    this.dirty.clear();
    if (this.messages.size > MAX_MESSAGES + TRIM_CHUNK) {
      for (const [oldestId, oldest] of this.messages) {
        if (this.messages.size <= MAX_MESSAGES) break;
        oldest.refs?.item.remove();
        this.messages.delete(oldestId);
      }
    }
    this.el.empty.hidden = this.messages.size > 0;
  }

  /** Post the box's text to the task's thread (and so to its agent). */
  async send() {
    const taskId = this.hooks.taskId();
    const content = this.el.text.value.trim();
    if (!taskId) return;
    if (!content) {
      setText(this.el.status, 'Write a message first.');
      this.el.text.focus();
      return;
    }
    const button = $of('button[type="submit"]', HTMLButtonElement, this.el.form);
    button.disabled = true;
    setText(this.el.status, 'Sending…');
    try {
      const posted = await api(`/api/v1/tasks/${encodeURIComponent(taskId)}/messages`, {
        method: 'POST',
        body: { content },
      });
      this.el.text.value = '';
      setText(this.el.status, posted.delivered ? 'Delivered to the agent.' : 'Saved; the agent gets it when it connects.');
    } catch (error) {
      setText(this.el.status, '');
      this.hooks.onError('Could not send the message', error);
    } finally {
      button.disabled = !this.hooks.session.may(POST.action);
    }
  }
}
