/**
 * The shapes of the documents the REST API answers (`taskline.domain.models`), as JSDoc
 * types for the other modules (`import('./types.js').Task`). Nothing runs here.
 * @module types
 */

/**
 * @typedef {object} Subtask
 * @property {string} id
 * @property {string} title
 * @property {boolean} done
 * @property {string} [notes]
 * @property {number} [position]
 */

/**
 * @typedef {object} Section
 * @property {string} id
 * @property {string} title
 * @property {number} [position]
 * @property {Subtask[]} subtasks
 */

/**
 * Who holds a claimed task, and until when.
 * @typedef {object} Lease
 * @property {string} agent_id
 * @property {number} token the fencing token
 * @property {string} expires_at
 */

/**
 * A task as `GET /api/v1/tasks/{id}` answers it.
 * @typedef {object} Task
 * @property {string} id
 * @property {string} title
 * @property {string} description
 * @property {string} status `pending`, `in_progress`, `paused`, `completed`, `failed`, `cancelled`
 * @property {string} priority `low`, `medium`, `high`, `urgent`
 * @property {number} progress 0 to 1
 * @property {number|null} confidence 0 to 1, or unknown
 * @property {string|null} assigned_agent_id
 * @property {string[]} tags
 * @property {unknown} result
 * @property {string} created_at
 * @property {string} updated_at
 * @property {string|null} started_at
 * @property {string|null} completed_at
 * @property {number} version bumped by every change (the ETag, quoted)
 * @property {Section[]} sections
 * @property {Lease|null} [lease]
 * @property {boolean} [needs_input] a person is asked something (missing: no)
 */

export {};
