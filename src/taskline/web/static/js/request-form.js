/**
 * Answering a request (an agent's question or approval), in the inbox and in the task panel.
 *
 * A question's `response_schema` becomes a form when it is an object whose properties are
 * strings, numbers, integers, booleans or enums (or one such value): labels from `title` or
 * the property name, hints from `description`, required fields marked. Any other schema gets
 * a JSON text box. `choices` are buttons (the answer is the one clicked). An approval shows
 * the action, why the agent wants it and its risk, its arguments in an editable JSON box, and
 * Approve / Reject with an optional comment.
 *
 * The server checks the answer (schema and choices: 422; not open any more: 409); its refusal
 * is shown in the form (and as a notice), and after a 409 the request is fetched again so the
 * page shows who answered it. Only members and admins may answer: for others every control is
 * disabled, with the reason.
 * @module request-form
 */

import { ApiError, api } from './api.js';
import { append, h, setText } from './dom.js';
import { prettyJson, shortJson } from './format.js';

/** @typedef {import('./types.js').Request} Request */

/** What answering needs (taskline.domain.access.Action), and how its refusal is said. */
export const ANSWER = { action: 'answer_requests', what: 'answer requests' };

/** How each status of a request is said. */
export const REQUEST_STATUS_LABELS = Object.freeze({
  open: 'Open',
  answered: 'Answered',
  approved: 'Approved',
  rejected: 'Rejected',
  expired: 'Expired',
  cancelled: 'Cancelled',
});

/**
 * A field of a schema form.
 * @typedef {object} SchemaField
 * @property {string|null} name the property (`null`: the answer is this one value)
 * @property {string} label
 * @property {string} description
 * @property {'string'|'number'|'integer'|'boolean'|'enum'} type
 * @property {unknown[]} options an enum's values
 * @property {boolean} required
 */

/**
 * The field a (property) schema can be shown as, or `null` when a form cannot show it.
 * @param {unknown} schema
 * @param {string|null} name
 * @param {boolean} required
 * @returns {SchemaField|null}
 */
function fieldOf(schema, name, required) {
  if (!schema || typeof schema !== 'object' || Array.isArray(schema)) return null;
  const s = /** @type {Record<string, any>} */ (schema);
  const label = typeof s.title === 'string' && s.title ? s.title : (name ?? 'Answer');
  const description = typeof s.description === 'string' ? s.description : '';
  if (Array.isArray(s.enum) && s.enum.length && s.enum.every((v) => ['string', 'number'].includes(typeof v))) {
    return { name, label, description, type: 'enum', options: s.enum, required };
  }
  if (['string', 'number', 'integer', 'boolean'].includes(s.type)) {
    return { name, label, description, type: s.type, options: [], required };
  }
  return null;
}

/**
 * The fields a form shows for `schema`, or `null` when it cannot (then the answer is typed
 * as JSON): an object of simple properties (see the module's description), or one simple value.
 * @param {Record<string, any>|null|undefined} schema
 * @returns {SchemaField[]|null}
 */
export function schemaFields(schema) {
  if (!schema) return null;
  if (schema.type === 'object' && schema.properties && typeof schema.properties === 'object') {
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    const fields = [];
    for (const [name, property] of Object.entries(schema.properties)) {
      const field = fieldOf(property, name, required.has(name));
      if (!field) return null;
      fields.push(field);
    }
    // a required property the form has no field for could never be given
    for (const name of required) if (!(name in schema.properties)) return null;
    return fields.length ? fields : null;
  }
  const one = fieldOf(schema, null, true);
  return one ? [one] : null;
}

/**
 * "agent:agent_x" → the agent's name; "person:ana" → "ana"; others as they are.
 * @param {string|null|undefined} actor
 * @param {(id: string) => string} [agentName]
 * @returns {string}
 */
export function actorName(actor, agentName) {
  if (!actor) return 'someone';
  const [kind, ...rest] = actor.split(':');
  const id = rest.join(':');
  if (kind === 'agent' && id) return agentName ? agentName(id) : id;
  if (kind === 'person' && id) return id;
  if (kind === 'system') return 'the server';
  return actor;
}

/**
 * What became of a request, in a sentence: "answered by ana: {"n": 3}", "approved by ana
 * with edited arguments", "expired unanswered", "open".
 * @param {Request} request
 * @param {(id: string) => string} [agentName]
 * @returns {string}
 */
export function outcomeText(request, agentName) {
  const by = actorName(request.resolved_by, agentName);
  const comment = request.comment ? ` — “${request.comment}”` : '';
  switch (request.status) {
    case 'open':
      return 'open, waiting for an answer';
    case 'answered':
      return `answered by ${by}: ${shortJson(request.answer, 200)}${comment}`;
    case 'approved': {
      const edited = request.arguments ? ` with edited arguments ${shortJson(request.arguments, 160)}` : ' as asked';
      return `approved by ${by}${edited}${comment}`;
    }
    case 'rejected':
      return `rejected by ${by}${comment}`;
    case 'expired':
      return `expired unanswered${comment}`;
    case 'cancelled':
      return `cancelled by ${by}${comment}`;
    default:
      return request.status;
  }
}

/**
 * What became of a request without its status word ("by ana: yes", "unanswered"), to follow
 * a badge that names the status.
 * @param {Request} request
 * @param {(id: string) => string} [agentName]
 * @returns {string}
 */
export function outcomeDetail(request, agentName) {
  const text = outcomeText(request, agentName);
  return text.startsWith(request.status) ? text.slice(request.status.length).trim() : text;
}

/**
 * "expires 14:05" (local time, with the date when not today), or `''` without an expiry.
 * @param {string|null|undefined} when
 * @returns {string}
 */
export function expiryText(when) {
  if (!when) return '';
  const at = new Date(when);
  const sameDay = at.toDateString() === new Date().toDateString();
  const clock = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return sameDay ? `expires ${clock}` : `expires ${at.toLocaleDateString()} ${clock}`;
}

/**
 * The form of one open request. Build it with {@link RequestForm.element}; it calls
 * `onChanged` with the request as the server has it after an answer (or after a 409).
 */
export class RequestForm {
  /**
   * @param {Request} request
   * @param {{scope: string,
   *   session: import('./session.js').Session,
   *   notices: import('./notices.js').Notices,
   *   onChanged: (request: Request) => void}} hooks `scope` keeps element ids unique per view
   */
  constructor(request, hooks) {
    this.request = request;
    this.hooks = hooks;
    this.prefix = `${hooks.scope}-${request.id}`;
    /** @type {Array<{field: SchemaField, input: HTMLInputElement|HTMLSelectElement}>} */
    this.inputs = [];
    /** @type {HTMLTextAreaElement|null} the JSON answer, or an approval's arguments */
    this.json = null;
    this.comment = /** @type {HTMLTextAreaElement} */ (
      h('textarea', { id: `${this.prefix}-comment`, rows: 2, maxlength: 10000 })
    );
    this.error = h('p', { class: 'form-error', role: 'alert', id: `${this.prefix}-error`, hidden: true });
    this.note = h('p', { class: 'access-note', id: `${this.prefix}-note`, hidden: true });
    this.fieldset = /** @type {HTMLFieldSetElement} */ (h('fieldset', { class: 'request-fieldset' }));
    this.busy = false;
    this.element = this.build();
    this.applyAccess();
  }

  /** Enable the controls, or disable them with the reason, as the signed-in role allows. */
  applyAccess() {
    const reason = this.hooks.session.denial(ANSWER.action, ANSWER.what);
    this.fieldset.disabled = Boolean(reason) || this.busy;
    setText(this.note, reason ? `${reason}.` : '');
    this.note.hidden = !reason;
  }

  /**
   * @private
   * @returns {HTMLFormElement}
   */
  build() {
    const request = this.request;
    const form = /** @type {HTMLFormElement} */ (
      h('form', {
        class: 'request-form',
        novalidate: true,
        'aria-label': request.kind === 'approval' ? 'Your decision' : 'Your answer',
        'aria-describedby': `${this.prefix}-note`,
        onsubmit: (/** @type {SubmitEvent} */ event) => {
          event.preventDefault();
          const submitter = /** @type {HTMLButtonElement|null} */ (event.submitter);
          if (request.kind === 'approval') this.decide(submitter?.value === 'reject' ? 'reject' : 'approve');
          else this.answerQuestion(submitter?.dataset.choice ?? null);
        },
      })
    );
    if (request.kind === 'approval') this.buildApproval();
    else this.buildQuestion();
    this.fieldset.append(
      h('div', { class: 'field' }, h('label', { for: this.comment.id }, 'Comment (optional)'), this.comment),
      this.buttons(),
    );
    form.append(this.note, this.fieldset, this.error);
    return form;
  }

  /** @private The fields of a question: schema form, choices, or a JSON or text box. */
  buildQuestion() {
    const request = this.request;
    if (request.choices?.length) return; // the choices are the buttons
    const fields = schemaFields(request.response_schema);
    if (fields) {
      fields.forEach((field, index) => this.fieldset.append(this.fieldFor(field, index)));
      return;
    }
    const id = `${this.prefix}-json`;
    const schemaNote = request.response_schema
      ? h('details', { class: 'request-schema' },
        h('summary', {}, 'The schema the answer must follow'),
        h('pre', {}, prettyJson(request.response_schema)))
      : null;
    this.json = /** @type {HTMLTextAreaElement} */ (
      h('textarea', { id, rows: 4, required: true, spellcheck: 'false', 'aria-describedby': `${this.prefix}-error` })
    );
    const label = request.response_schema ? 'Answer (JSON)' : 'Answer';
    this.fieldset.append(h('div', { class: 'field' }, h('label', { for: id }, label), this.json));
    if (schemaNote) this.fieldset.append(schemaNote);
  }

  /**
   * @private
   * @param {SchemaField} field
   * @param {number} index
   * @returns {HTMLElement}
   */
  fieldFor(field, index) {
    const id = `${this.prefix}-f${index}`;
    const hintId = `${id}-hint`;
    const hint = field.description ? h('p', { class: 'field-hint muted', id: hintId }, field.description) : null;
    const described = [hint ? hintId : null, `${this.prefix}-error`].filter(Boolean).join(' ');
    const label = h('label', { for: id }, field.label, field.required && field.type !== 'boolean'
      ? h('span', { class: 'required-mark' }, ' (required)') : null);
    /** @type {HTMLInputElement|HTMLSelectElement} */
    let input;
    if (field.type === 'boolean') {
      input = /** @type {HTMLInputElement} */ (h('input', { id, type: 'checkbox', 'aria-describedby': described }));
      this.inputs.push({ field, input });
      return h('div', { class: 'field field-check' }, input, label, hint);
    }
    if (field.type === 'enum') {
      input = /** @type {HTMLSelectElement} */ (
        h('select', { id, required: field.required, 'aria-describedby': described },
          h('option', { value: '' }, field.required ? 'Choose…' : '(none)'),
          field.options.map((option, n) => h('option', { value: String(n) }, String(option))))
      );
    } else {
      const numeric = field.type === 'number' || field.type === 'integer';
      input = /** @type {HTMLInputElement} */ (
        h('input', {
          id,
          type: numeric ? 'number' : 'text',
          step: field.type === 'integer' ? '1' : numeric ? 'any' : null,
          inputmode: field.type === 'integer' ? 'numeric' : null,
          required: field.required,
          autocomplete: 'off',
          'aria-describedby': described,
        })
      );
    }
    this.inputs.push({ field, input });
    return h('div', { class: 'field' }, label, input, hint);
  }

  /** @private An approval: the action, why, its risk, and its arguments (editable). */
  buildApproval() {
    const action = this.request.action;
    const id = `${this.prefix}-arguments`;
    this.json = /** @type {HTMLTextAreaElement} */ (
      h('textarea', { id, rows: 5, spellcheck: 'false', 'aria-describedby': `${this.prefix}-error` })
    );
    this.json.value = prettyJson(action?.arguments ?? {});
    append(this.fieldset, [
      h('p', { class: 'request-action' },
        'Action: ', h('code', {}, action?.name ?? '?'), ' ',
        h('span', { class: `risk risk-${action?.risk ?? 'medium'}` }, `${action?.risk ?? 'medium'} risk`)),
      action?.reason ? h('p', { class: 'request-reason' }, `Why: ${action.reason}`) : null,
      h('div', { class: 'field' }, h('label', { for: id }, 'Arguments (JSON, editable)'), this.json),
    ]);
  }

  /**
   * @private
   * @returns {HTMLElement}
   */
  buttons() {
    const request = this.request;
    if (request.kind === 'approval') {
      return h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'button-primary', value: 'approve' }, 'Approve'),
        h('button', { type: 'submit', class: 'button-danger', value: 'reject' }, 'Reject'));
    }
    if (request.choices?.length) {
      return h('div', { class: 'actions request-choices', role: 'group', 'aria-label': 'Choices' },
        request.choices.map((choice) => h('button', { type: 'submit', dataset: { choice } }, choice)));
    }
    return h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'button-primary' }, 'Send answer'));
  }

  /**
   * @private Show a problem with the answer (or clear it with `null`).
   * @param {string|null} text
   * @param {HTMLElement|null} [at] the control at fault (marked invalid, focused)
   */
  showError(text, at = null) {
    for (const control of this.fieldset.querySelectorAll('[aria-invalid]')) control.removeAttribute('aria-invalid');
    setText(this.error, text ?? '');
    this.error.hidden = !text;
    if (at) {
      at.setAttribute('aria-invalid', 'true');
      at.focus();
    }
  }

  /**
   * @private The answer the form holds, or `undefined` (the problem is shown).
   * @returns {unknown}
   */
  collect() {
    if (this.json) {
      const text = this.json.value.trim();
      if (!this.request.response_schema) {
        if (!text) return this.showError('Write an answer.', this.json);
        return text;
      }
      try {
        return JSON.parse(text);
      } catch (error) {
        return this.showError(`The answer is not JSON: ${error instanceof Error ? error.message : error}`, this.json);
      }
    }
    /** @type {Record<string, unknown>} */
    const answer = {};
    for (const { field, input } of this.inputs) {
      /** @type {unknown} */
      let value;
      if (input instanceof HTMLInputElement && input.type === 'checkbox') value = input.checked;
      else if (input instanceof HTMLSelectElement) value = input.value === '' ? undefined : field.options[Number(input.value)];
      else if (input.value.trim() === '') value = undefined;
      else if (field.type === 'number' || field.type === 'integer') {
        value = Number(input.value);
        if (!Number.isFinite(value)) return this.showError(`${field.label}: give a number.`, input);
      } else value = input.value;
      if (value === undefined) {
        if (field.required) return this.showError(`${field.label} is required.`, input);
        continue;
      }
      if (field.name === null) return value;
      answer[field.name] = value;
    }
    return answer;
  }

  /**
   * @private Answer a question (with the choice clicked, if any).
   * @param {string|null} choice
   */
  answerQuestion(choice) {
    const answer = choice ?? this.collect();
    if (answer === undefined) return;
    this.send({ answer });
  }

  /**
   * @private Approve (with the arguments if they were edited) or reject.
   * @param {'approve'|'reject'} decision
   */
  decide(decision) {
    /** @type {Record<string, unknown>} */
    const body = { decision };
    if (decision === 'approve' && this.json) {
      let edited;
      try {
        edited = JSON.parse(this.json.value);
      } catch (error) {
        this.showError(`The arguments are not JSON: ${error instanceof Error ? error.message : error}`, this.json);
        return;
      }
      if (!edited || typeof edited !== 'object' || Array.isArray(edited)) {
        this.showError('The arguments must be a JSON object ({…}).', this.json);
        return;
      }
      if (JSON.stringify(edited) !== JSON.stringify(this.request.action?.arguments ?? {})) body.arguments = edited;
    }
    this.send(body);
  }

  /**
   * @private
   * @param {Record<string, unknown>} body
   */
  async send(body) {
    const comment = this.comment.value.trim();
    if (comment) body.comment = comment;
    this.showError(null);
    this.busy = true;
    this.applyAccess();
    const path = `/api/v1/requests/${encodeURIComponent(this.request.id)}`;
    try {
      /** @type {Request} */
      const done = await api(`${path}/answer`, { method: 'POST', body });
      this.hooks.onChanged(done);
    } catch (error) {
      this.refused(error, path);
    } finally {
      this.busy = false;
      this.applyAccess();
    }
  }

  /**
   * @private The server refused the answer: say why; after a 409, show who answered.
   * @param {unknown} error
   * @param {string} path
   */
  async refused(error, path) {
    const reason = error instanceof Error ? error.message : String(error);
    if (error instanceof ApiError && error.status === 422) {
      this.showError(`The answer was refused: ${reason}`, this.json ?? this.inputs[0]?.input ?? null);
      return;
    }
    if (error instanceof ApiError && error.status === 409) {
      this.showError(`Someone else got there first: ${reason}`);
      this.hooks.notices.error(`Could not answer “${shortJson(this.request.question, 80)}”`, error);
      try {
        /** @type {Request} */
        const now = await api(path);
        this.hooks.onChanged(now);
      } catch (again) {
        this.hooks.notices.error('Could not reload the request', again);
      }
      return;
    }
    this.showError(`Could not send the answer: ${reason}`);
  }
}
