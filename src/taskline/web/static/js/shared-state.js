/**
 * The task's shared state, following `state.snapshot` and `state.patch` events.
 *
 * Every state event carries the `version` the server gave it (each snapshot or patch adds
 * one). A patch is applied only on top of exactly the previous version; anything else — a
 * version jump, a patch that does not apply — makes us fetch the document
 * (`GET /api/v1/tasks/{id}/state`) instead of showing a wrong one. Versions at or below ours
 * are already included and skipped.
 * @module shared-state
 */

import { api } from './api.js';
import { applyPatch, PatchError } from './json-patch.js';

export class SharedState {
  /**
   * @param {string} taskId
   * @param {{onChange: () => void, onError: (context: string, error: unknown) => void}} hooks
   */
  constructor(taskId, hooks) {
    this.taskId = taskId;
    this.hooks = hooks;
    /** @type {any} */
    this.document = null;
    this.version = 0;
    /** How many times a refetch was needed (shown nowhere; handy in tests and benchmarks). */
    this.refetches = 0;
    this.fetching = null;
    this.fetchAgain = false;
  }

  /**
   * Take a fetched document unless we already have a newer one.
   * @param {{version: number, state: any}} body
   */
  load(body) {
    if (body.version < this.version) return;
    this.document = body.state;
    this.version = body.version;
    this.hooks.onChange();
  }

  /**
   * Apply a `state.snapshot` or `state.patch` event.
   * @param {{event_type: string, data: Record<string, any>}} event
   */
  apply(event) {
    const version = event.data.version;
    if (typeof version !== 'number') {
      this.refetch();
      return;
    }
    if (version <= this.version) return;
    if (event.event_type === 'state.snapshot') {
      this.document = event.data.snapshot;
      this.version = version;
      this.hooks.onChange();
      return;
    }
    if (version !== this.version + 1) {
      this.refetch();
      return;
    }
    try {
      this.document = applyPatch(this.document ?? {}, event.data.patch);
      this.version = version;
      this.hooks.onChange();
    } catch (error) {
      if (!(error instanceof PatchError)) throw error;
      console.warn(`state patch v${version} does not apply here (${error.message}); refetching`);
      this.refetch();
    }
  }

  /** Fetch the document; calls made while one fetch runs are merged into one more fetch. */
  refetch() {
    if (this.fetching) {
      this.fetchAgain = true;
      return this.fetching;
    }
    this.refetches += 1;
    this.fetching = api(`/api/v1/tasks/${encodeURIComponent(this.taskId)}/state`)
      .then((body) => this.load(body))
      .catch((error) => this.hooks.onError('Could not load the shared state', error))
      .finally(() => {
        this.fetching = null;
        if (this.fetchAgain) {
          this.fetchAgain = false;
          this.refetch();
        }
      });
    return this.fetching;
  }
}
