/**
 * Webhooks, for admins: a panel on the board that lists the outgoing webhooks
 * (`GET /api/v1/webhooks/`), adds one (its signing secret is shown once, right after),
 * sends a test delivery and says how it went, and turns a webhook off or on. It stays hidden
 * for everyone whose role may not `manage_webhooks`.
 * @module webhooks
 */

import { api } from './api.js';
import { clear, h, setText } from './dom.js';

/**
 * @typedef {object} Webhook
 * @property {string} id
 * @property {string} url
 * @property {string[]} events
 * @property {string} format
 * @property {boolean} enabled
 */

/**
 * One line for a delivery: "delivered (HTTP 200)", "pending: HTTP 503 …, attempt 1".
 * @param {{status: string, response_status: number|null, error: string|null, attempts: number}} delivery
 * @returns {string}
 */
export function deliveryLine(delivery) {
  if (delivery.status === 'delivered') return `delivered (HTTP ${delivery.response_status})`;
  const why = delivery.error ? `: ${delivery.error}` : '';
  return `${delivery.status}${why} (attempt ${delivery.attempts})`;
}

/**
 * Whether a delivery's first attempt has an outcome.
 * @param {{status: string, attempts: number}} delivery
 * @returns {boolean}
 */
export function attempted(delivery) {
  return ['delivered', 'failed'].includes(delivery.status) || (delivery.status === 'pending' && delivery.attempts > 0);
}

export class WebhooksPanel {
  /**
   * @param {HTMLElement} root an empty, hidden `<section>`
   * @param {{session: import('./session.js').Session, notices: import('./notices.js').Notices}} deps
   */
  constructor(root, { session, notices }) {
    this.root = root;
    this.session = session;
    this.notices = notices;
    this.list = h('ul', { class: 'webhooks-list', id: 'webhooks-list' });
    this.empty = h('p', { class: 'muted', id: 'webhooks-empty', hidden: true }, 'No webhooks yet.');
    this.secret = h('p', { class: 'webhooks-secret', id: 'webhooks-secret', hidden: true });
    this.url = /** @type {HTMLInputElement} */ (h('input', { type: 'url', id: 'webhook-url', required: true, placeholder: 'https://…', 'aria-label': 'Webhook URL' }));
    this.events = /** @type {HTMLInputElement} */ (h('input', { type: 'text', id: 'webhook-events', value: '*', 'aria-label': 'Events (comma separated)' }));
    this.format = /** @type {HTMLSelectElement} */ (
      h(
        'select',
        { id: 'webhook-format', 'aria-label': 'Format' },
        ['standard', 'slack', 'discord'].map((name) => h('option', { value: name }, name)),
      )
    );
    const form = h(
      'form',
      { class: 'webhooks-form', id: 'webhook-form', novalidate: true, onsubmit: (/** @type {SubmitEvent} */ event) => this.add(event) },
      this.url,
      this.events,
      this.format,
      h('button', { type: 'submit', class: 'button-small' }, 'Add webhook'),
    );
    clear(root);
    root.append(h('h2', { class: 'section-label', id: 'webhooks-title' }, 'Webhooks'), this.list, this.empty, form, this.secret);
    root.setAttribute('aria-labelledby', 'webhooks-title');
    session.subscribe(() => this.refresh());
    this.refresh();
  }

  /** Show the panel (and load the webhooks) when the role may manage them; hide it otherwise. */
  async refresh() {
    const allowed = Boolean(this.session.me) && this.session.may('manage_webhooks');
    this.root.hidden = !allowed;
    if (!allowed) return;
    try {
      const { webhooks } = await api('/api/v1/webhooks/');
      this.render(webhooks);
    } catch (error) {
      this.notices.error('Could not load the webhooks', error);
    }
  }

  /** @param {Webhook[]} webhooks */
  render(webhooks) {
    clear(this.list);
    this.empty.hidden = webhooks.length > 0;
    for (const webhook of webhooks) {
      const result = h('span', { class: 'webhook-result muted', 'aria-live': 'polite' });
      const toggle = h(
        'button',
        { type: 'button', class: 'button-small', onclick: () => this.toggle(webhook) },
        webhook.enabled ? 'Turn off' : 'Turn on',
      );
      const test = /** @type {HTMLButtonElement} */ (
        h('button', { type: 'button', class: 'button-small', onclick: () => this.test(webhook, result, test) }, 'Test')
      );
      this.list.append(
        h(
          'li',
          { class: 'webhook', dataset: { id: webhook.id, enabled: String(webhook.enabled) } },
          h('span', { class: 'webhook-url' }, webhook.url),
          ' ',
          h('span', { class: 'muted' }, `${webhook.events.join(', ')} · ${webhook.format}${webhook.enabled ? '' : ' · off'}`),
          ' ',
          test,
          toggle,
          ' ',
          result,
        ),
      );
    }
  }

  /** @param {SubmitEvent} event */
  async add(event) {
    event.preventDefault();
    const events = this.events.value
      .split(',')
      .map((/** @type {string} */ part) => part.trim())
      .filter(Boolean);
    try {
      const made = await api('/api/v1/webhooks/', {
        method: 'POST',
        body: { url: this.url.value.trim(), events: events.length ? events : ['*'], format: this.format.value },
      });
      setText(this.secret, `Signing secret of ${made.id} (shown only now): ${made.secret}`);
      this.secret.hidden = false;
      this.url.value = '';
      await this.refresh();
    } catch (error) {
      this.notices.error('Could not add the webhook', error);
    }
  }

  /**
   * @param {Webhook} webhook
   * @param {HTMLElement} result
   * @param {HTMLButtonElement} button
   */
  async test(webhook, result, button) {
    button.disabled = true;
    setText(result, 'sending…');
    const base = `/api/v1/webhooks/${encodeURIComponent(webhook.id)}`;
    try {
      let delivery = await api(`${base}/test`, { method: 'POST' });
      // the server answers after a second at most: a slow receiver's outcome comes later
      const deadline = Date.now() + 30_000;
      while (!attempted(delivery) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        const { deliveries } = await api(`${base}/deliveries?limit=20`);
        delivery = deliveries.find((/** @type {{id: string}} */ found) => found.id === delivery.id) ?? delivery;
      }
      setText(result, deliveryLine(delivery));
      result.dataset.status = delivery.status;
    } catch (error) {
      setText(result, '');
      this.notices.error('Could not send a test delivery', error);
    } finally {
      button.disabled = false;
    }
  }

  /** @param {Webhook} webhook */
  async toggle(webhook) {
    try {
      await api(`/api/v1/webhooks/${encodeURIComponent(webhook.id)}`, {
        method: 'PATCH',
        body: { enabled: !webhook.enabled },
      });
      await this.refresh();
    } catch (error) {
      this.notices.error('Could not change the webhook', error);
    }
  }
}
