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

/**
 * The action an approval asks for.
 * @typedef {object} ApprovalAction
 * @property {string} name
 * @property {Record<string, unknown>} arguments as the agent asked
 * @property {string|null} [reason] why the agent wants it
 * @property {string} risk `low`, `medium`, `high`
 */

/**
 * A request (`GET /api/v1/requests/{id}`): an agent asks a person a question or for an
 * approval, and waits for the answer.
 * @typedef {object} Request
 * @property {string} id
 * @property {string} task_id
 * @property {'question'|'approval'} kind
 * @property {string} status `open`, `answered`, `approved`, `rejected`, `expired`, `cancelled`
 * @property {string} question what the person is asked
 * @property {Record<string, any>|null} [response_schema] a question's answer must validate
 * @property {string[]|null} [choices] a question's answer must be one of them
 * @property {ApprovalAction|null} [action] what an approval asks for
 * @property {string|null} [tool_call_id]
 * @property {string|null} [run_id]
 * @property {string|null} [expires_at]
 * @property {string} created_at
 * @property {string} created_by who asked: `agent:…`, `person:…`, `token:…`
 * @property {string|null} [resolved_at]
 * @property {string|null} [resolved_by] who answered or cancelled it (`system:…`: expired)
 * @property {unknown} [answer] a question's answer
 * @property {Record<string, unknown>|null} [arguments] an approval's edited arguments (null: as asked)
 * @property {string|null} [comment]
 */

export {};
