/**
 * One line of text per event type, for the timeline; and the group each type belongs to,
 * for its filter.
 * @module event-summary
 */

import { STATUS_LABELS, STATUS_OF_EVENT, duration, percent, shortJson } from './format.js';
import { outcomeText } from './request-form.js';

/** Timeline filter groups → the event types they show (`other`: everything not listed). */
export const EVENT_GROUPS = Object.freeze({
  progress: ['progress_update', 'confidence_update'],
  messages: ['message.start', 'message.delta', 'message.end', 'task_message'],
  tools: ['tool_call.start', 'tool_call.args', 'tool_call.end', 'tool_call.result'],
  state: ['state.snapshot', 'state.patch'],
  task: [
    'task_created', 'task_updated', 'task_deleted', 'task_started', 'task_paused',
    'task_resumed', 'task_completed', 'task_failed', 'task_cancelled', 'subtask_updated',
  ],
  agent: ['agent_status_change', 'step.start', 'step.end'],
  requests: ['request.opened', 'request.answered', 'request.expired', 'request.cancelled'],
});

const GROUP_OF = new Map();
for (const [group, types] of Object.entries(EVENT_GROUPS)) {
  for (const type of types) GROUP_OF.set(type, group);
}

/**
 * The filter group of an event (`custom` events named `task_message` count as messages).
 * @param {{event_type: string, data?: Record<string, any>}} event
 * @returns {string}
 */
export function groupOf(event) {
  if (event.event_type === 'custom' && event.data?.name === 'task_message') return 'messages';
  return GROUP_OF.get(event.event_type) ?? 'other';
}

/**
 * A short description of an event.
 * @param {{event_type: string, data?: Record<string, any>}} event
 * @returns {string}
 */
export function summarize(event) {
  const d = event.data || {};
  switch (event.event_type) {
    case 'progress_update': {
      let text = percent(d.progress);
      if (d.message) text += ` — ${d.message}`;
      if (d.confidence !== null && d.confidence !== undefined) text += ` (confidence ${percent(d.confidence)})`;
      return text;
    }
    case 'confidence_update':
      return `confidence ${percent(d.confidence)}`;
    case 'message.start':
      return `${d.role || 'assistant'} started message ${d.message_id}`;
    case 'message.delta':
      return `“${shortJson(d.delta ?? '', 120)}”`;
    case 'message.end':
      return `message ${d.message_id} finished`;
    case 'tool_call.start':
      return `${d.name}(${d.args === undefined || d.args === null ? '' : shortJson(d.args, 100)})`;
    case 'tool_call.args':
      return `${d.tool_call_id} arguments += ${shortJson(d.delta ?? '', 80)}`;
    case 'tool_call.end': {
      const took = d.duration_ms !== null && d.duration_ms !== undefined ? ` in ${duration(d.duration_ms)}` : '';
      if (d.error) return `${d.name || d.tool_call_id} failed${took}: ${d.error}`;
      return `${d.name || d.tool_call_id} done${took}`;
    }
    case 'tool_call.result':
      return `${d.tool_call_id} → ${shortJson(d.content, 100)}`;
    case 'state.snapshot':
      return `snapshot (version ${d.version ?? '?'})`;
    case 'state.patch': {
      const ops = Array.isArray(d.patch) ? d.patch.map((op) => `${op.op} ${op.path}`).join(', ') : '';
      return `version ${d.version ?? '?'}: ${shortJson(ops, 120)}`;
    }
    case 'task_created':
      return `created “${d.task?.title ?? ''}”`;
    case 'task_updated':
      if (d.lease?.reason) return `lease ${d.lease.action}: ${d.lease.reason}`;
      return d.changes?.length ? `changed ${d.changes.join(', ')}` : 'updated';
    case 'task_deleted':
      return 'task deleted';
    case 'subtask_updated':
      return `${d.done ? '☑' : '☐'} ${d.title ?? d.subtask_id}`;
    case 'agent_status_change':
      return `${d.agent_id}: ${d.previous ?? '?'} → ${d.status}`;
    case 'step.start':
      return `step “${d.name}” started`;
    case 'step.end':
      return `step “${d.name}” ended`;
    case 'custom':
      if (d.name === 'task_message') {
        const value = d.value || {};
        return `${value.author ?? 'someone'}: ${shortJson(value.content ?? '', 140)}`;
      }
      return `${d.name}: ${shortJson(d.value, 120)}`;
    case 'request.opened': {
      const what = d.kind === 'approval' ? `approval of ${d.action?.name ?? '?'}` : 'question';
      return `${what} asked: “${shortJson(d.question ?? '', 120)}”`;
    }
    case 'request.answered':
    case 'request.expired':
    case 'request.cancelled':
      return `“${shortJson(d.question ?? '', 60)}” ${outcomeText(/** @type {import('./types.js').Request} */ (d))}`;
    case 'error':
      return d.message || 'error';
    default:
      if (STATUS_OF_EVENT[event.event_type]) {
        const reason = d.reason || d.error || '';
        return `→ ${STATUS_LABELS[STATUS_OF_EVENT[event.event_type]]}${reason ? `: ${reason}` : ''}`;
      }
      return shortJson(d, 140);
  }
}
